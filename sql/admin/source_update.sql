-- Write every settable column of one source (PATCH merges the request into the row it locked
-- with source_lock, then writes the result). The name is the source's identity: it stays.
-- $1 name, $2 verify, $3 secrets, $4 signature_header, $5 tolerance_seconds,
-- $6 ordering_key, $7 idempotency_key, $8 event_type, $9 tenant_id, $10 max_body_bytes,
-- $11 rate_limit, $12 get_challenge, $13 enabled, $14 description
UPDATE outbox.sources s
   SET verify = $2, secrets = $3, signature_header = $4, tolerance_seconds = $5,
       ordering_key = $6, idempotency_key = $7, event_type = $8, tenant_id = $9,
       max_body_bytes = $10, rate_limit = $11, get_challenge = $12, enabled = $13,
       description = $14, updated_at = now()
 WHERE s.name = $1
RETURNING s.id, s.name, s.verify, cardinality(s.secrets) AS secret_count, s.signature_header,
       s.tolerance_seconds, s.ordering_key, s.idempotency_key, s.event_type, s.tenant_id,
       s.max_body_bytes, s.rate_limit, s.get_challenge, s.enabled, s.description, s.created_at,
       s.updated_at
