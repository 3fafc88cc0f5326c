-- The console's page of a source: its latest stored requests, newest first, without what may
-- carry secrets (headers: a `token` source's shared secret is one; the query string) or the
-- body. Runs as outboxd_runtime, which reads outbox.inbound_requests (not the audit view).
-- $1 source name, $2 rows
SELECT r.id, r.received_at, r.method, r.content_type, length(r.body) AS body_bytes,
       r.idempotency_key, r.event_type, r.resource_key, r.tenant_id,
       (SELECT count(*) FROM outbox.events e WHERE e.request_id = r.id) AS events
  FROM outbox.inbound_requests r
 WHERE r.source = $1
 ORDER BY r.id DESC
 LIMIT $2
