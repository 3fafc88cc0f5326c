-- A large payload, fetched by the worker that sends it (not inline in the claim).
-- $1 event pk
SELECT payload::text FROM outbox.events WHERE id = $1
