-- Which of these event_ids an earlier batch already routed (idempotency on event_id).
-- $1 event_ids
SELECT DISTINCT event_id
  FROM outbox.events
 WHERE event_id = ANY($1::text[]) AND routed_at IS NOT NULL
