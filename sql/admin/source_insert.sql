-- Create a source (validated by the caller, with the scheme's default idempotency key
-- applied as outbox.add_source does). Never returns the secrets.
-- $1 name, $2 verify, $3 secrets, $4 signature_header, $5 tolerance_seconds,
-- $6 ordering_key, $7 idempotency_key, $8 event_type, $9 tenant_id, $10 max_body_bytes,
-- $11 rate_limit, $12 get_challenge, $13 enabled, $14 description
INSERT INTO outbox.sources AS s (name, verify, secrets, signature_header, tolerance_seconds,
                                 ordering_key, idempotency_key, event_type, tenant_id,
                                 max_body_bytes, rate_limit, get_challenge, enabled, description)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING s.id, s.name, s.verify, cardinality(s.secrets) AS secret_count, s.signature_header,
       s.tolerance_seconds, s.ordering_key, s.idempotency_key, s.event_type, s.tenant_id,
       s.max_body_bytes, s.rate_limit, s.get_challenge, s.enabled, s.description, s.created_at,
       s.updated_at
