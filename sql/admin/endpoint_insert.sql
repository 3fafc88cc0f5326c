-- Create an endpoint (validated by the caller); the secret is generated when $4 is null.
-- Returns the endpoint and, once, its secret.
-- $1 url, $2 tenant_id, $3 all_tenants, $4 secret, $5 headers, $6 enabled, $7 max_in_flight,
-- $8 rate_limit, $9 description, $10 disabled_reason, $11 retry_schedule,
-- $12 max_age in seconds, $13 client_certificate (a name; mutual TLS)
INSERT INTO outbox.endpoints AS e (url, tenant_id, all_tenants, secrets, headers, enabled,
                                   max_in_flight, rate_limit, description, disabled_reason,
                                   retry_schedule, max_age, client_certificate)
VALUES ($1, $2, $3, ARRAY[coalesce($4::text, outbox.new_secret())], $5, $6, $7, $8, $9, $10,
        $11, make_interval(secs => $12::float8), $13)
RETURNING e.id, e.url, e.tenant_id, e.all_tenants, cardinality(e.secrets) AS secret_count,
          e.headers, e.enabled, e.max_in_flight, e.rate_limit, e.description, e.disabled_reason,
          e.created_at, e.updated_at, e.retry_schedule,
          extract(epoch FROM e.max_age)::float8 AS max_age_seconds, e.client_certificate, e.secrets[1] AS secret
