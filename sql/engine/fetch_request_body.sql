-- A large body of a relayed inbound request, fetched by the worker that sends it.
-- $1 outbox.inbound_requests id
SELECT body FROM outbox.inbound_requests WHERE id = $1
