-- Mark a batch routed (also events that matched no endpoint, and duplicates), and count the
-- event types seen (outbox.event_type_stats: what GET /v1/event-types lists without scanning
-- the outbox). Only the router writes those rows, one router at a time: no contention.
-- $1 event pks
WITH marked AS (
    UPDATE outbox.events SET routed_at = now()
     WHERE id = ANY($1::bigint[]) AND routed_at IS NULL
    RETURNING event_type
)
INSERT INTO outbox.event_type_stats AS s (name, events, first_seen, last_seen)
SELECT m.event_type, count(*), now(), now()
  FROM marked m
 GROUP BY m.event_type
 ORDER BY m.event_type
ON CONFLICT (name) DO UPDATE SET events = s.events + excluded.events, last_seen = excluded.last_seen
