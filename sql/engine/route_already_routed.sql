-- Which of these event_ids an earlier batch already routed (idempotency on event_id).
-- One index probe per id (LATERAL ... LIMIT 1): written as `event_id = ANY($1)` the planner
-- sometimes estimated that most of the table matched and chose a sequential scan of all
-- events, once per routing batch (measured: 30 ms per batch at 100 k events, growing with
-- the table).
-- $1 event_ids
SELECT DISTINCT u.event_id
  FROM unnest($1::text[]) AS u(event_id)
 CROSS JOIN LATERAL (SELECT 1 FROM outbox.events e
                      WHERE e.event_id = u.event_id AND e.routed_at IS NOT NULL
                      LIMIT 1) hit
