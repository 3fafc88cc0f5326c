-- One source by name: a request for a name the in-memory copy does not have yet.
-- $1 name
SELECT name, verify, secrets, signature_header, tolerance_seconds, ordering_key,
       idempotency_key, event_type, tenant_id, max_body_bytes, rate_limit, get_challenge, enabled
  FROM outbox.sources
 WHERE name = $1
