-- A page of endpoints in id order, never their secrets.
-- $1 id to start after (0 for the first page), $2 tenant filter (null: every endpoint),
-- $3 rows to return (the caller asks for one more than the page to know if there is a next).
SELECT e.id, e.url, e.tenant_id, e.all_tenants, cardinality(e.secrets) AS secret_count,
       e.headers, e.enabled, e.max_in_flight, e.rate_limit, e.description, e.disabled_reason,
       e.created_at, e.updated_at, e.retry_schedule,
       extract(epoch FROM e.max_age)::float8 AS max_age_seconds, e.client_certificate
  FROM outbox.endpoints e
 WHERE e.id > $1
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
 ORDER BY e.id
 LIMIT $3
