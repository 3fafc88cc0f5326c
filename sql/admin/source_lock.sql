-- One source by name with its secrets, locked for a read-modify-write (PATCH). $1 name
SELECT s.id, s.name, s.verify, cardinality(s.secrets) AS secret_count, s.signature_header,
       s.tolerance_seconds, s.ordering_key, s.idempotency_key, s.event_type, s.tenant_id,
       s.max_body_bytes, s.rate_limit, s.get_challenge, s.enabled, s.description, s.created_at,
       s.updated_at, s.secrets
  FROM outbox.sources s
 WHERE s.name = $1
   FOR UPDATE
