-- Add new deliveries to their lanes, locking lane rows in (endpoint_id, lane_key) order.
-- Returns each lane's new count; count - added = what was in flight before.
-- $1 endpoint ids, $2 lane keys, $3 deliveries added per lane (sorted by the caller)
INSERT INTO outbox.lanes AS l (endpoint_id, lane_key, pending)
SELECT u.endpoint_id, u.lane_key, u.n
  FROM unnest($1::bigint[], $2::text[], $3::int[]) AS u(endpoint_id, lane_key, n)
 ORDER BY u.endpoint_id, u.lane_key
ON CONFLICT (endpoint_id, lane_key)
DO UPDATE SET pending = l.pending + excluded.pending, updated_at = now()
RETURNING l.endpoint_id, l.lane_key, l.pending
