-- Every endpoint with the union of its active subscriptions' patterns.
SELECT e.id, e.url, e.tenant_id, e.all_tenants, e.secrets, e.headers, e.enabled,
       e.max_in_flight, e.rate_limit,
       coalesce(ARRAY(SELECT DISTINCT p
                        FROM outbox.subscriptions s, unnest(s.event_types) AS p
                       WHERE s.endpoint_id = e.id AND s.active), '{}') AS patterns
  FROM outbox.endpoints e
 ORDER BY e.id
