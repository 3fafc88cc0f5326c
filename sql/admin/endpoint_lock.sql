-- One endpoint, locked for a read-modify-write (PATCH, secret rotation). $1 endpoint id
SELECT e.id, e.url, e.tenant_id, e.all_tenants, cardinality(e.secrets) AS secret_count,
       e.secrets, e.headers, e.enabled, e.max_in_flight, e.rate_limit, e.description,
       e.disabled_reason, e.created_at, e.updated_at, e.retry_schedule,
       extract(epoch FROM e.max_age)::float8 AS max_age_seconds, e.client_certificate
  FROM outbox.endpoints e
 WHERE e.id = $1
   FOR UPDATE
