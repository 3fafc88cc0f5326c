-- A page of sources in id order, never their secrets.
-- $1 id to start after (0 for the first page), $2 rows to return (one more than the page).
SELECT s.id, s.name, s.verify, cardinality(s.secrets) AS secret_count, s.signature_header,
       s.tolerance_seconds, s.ordering_key, s.idempotency_key, s.event_type, s.tenant_id,
       s.max_body_bytes, s.rate_limit, s.get_challenge, s.enabled, s.description, s.created_at,
       s.updated_at
  FROM outbox.sources s
 WHERE s.id > $1
 ORDER BY s.id
 LIMIT $2
