-- Write every settable column of one endpoint (PATCH merges the request into the row it
-- locked with endpoint_lock, then writes the result). Secrets are changed only by rotation.
-- $1 endpoint id, $2 url, $3 tenant_id, $4 all_tenants, $5 headers, $6 enabled,
-- $7 max_in_flight, $8 rate_limit, $9 description, $10 disabled_reason, $11 retry_schedule,
-- $12 max_age in seconds, $13 client_certificate
UPDATE outbox.endpoints e
   SET url = $2, tenant_id = $3, all_tenants = $4, headers = $5, enabled = $6,
       max_in_flight = $7, rate_limit = $8, description = $9, disabled_reason = $10,
       retry_schedule = $11, max_age = make_interval(secs => $12::float8),
       client_certificate = $13, updated_at = now()
 WHERE e.id = $1
RETURNING e.id, e.url, e.tenant_id, e.all_tenants, cardinality(e.secrets) AS secret_count,
          e.headers, e.enabled, e.max_in_flight, e.rate_limit, e.description, e.disabled_reason,
          e.created_at, e.updated_at, e.retry_schedule,
          extract(epoch FROM e.max_age)::float8 AS max_age_seconds, e.client_certificate
