-- OUTBOXD_STRICT_EVENT_TYPES: the deliveries an event of an unregistered type would have had
-- are created dead, so they show where dead deliveries show (outbox.dead_deliveries, /metrics,
-- the admin API) and outbox.retry_dead revives them once the type is registered. Dead
-- deliveries are not counted in their lanes (lanes count unfinished work), so no lane changes.
-- $1 event pks, $2 endpoint ids, $3 lane keys, $4 the reason
INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, state, completed_at, last_error)
SELECT u.event_pk, u.endpoint_id, u.lane_key, 'dead', now(), $4::text
  FROM unnest($1::bigint[], $2::bigint[], $3::text[]) WITH ORDINALITY
       AS u(event_pk, endpoint_id, lane_key, ord)
 ORDER BY u.ord
