-- Every endpoint with its active subscriptions: the union of the patterns of those without a
-- content filter, and those with one, one by one (id, event_types, filter).
SELECT e.id, e.url, e.tenant_id, e.all_tenants, e.secrets, e.headers, e.enabled,
       e.max_in_flight, e.rate_limit,
       coalesce(ARRAY(SELECT DISTINCT p
                        FROM outbox.subscriptions s, unnest(s.event_types) AS p
                       WHERE s.endpoint_id = e.id AND s.active AND s.filter IS NULL), '{}') AS patterns,
       coalesce((SELECT jsonb_agg(jsonb_build_object('id', s.id, 'event_types', s.event_types,
                                                     'filter', s.filter) ORDER BY s.id)
                   FROM outbox.subscriptions s
                  WHERE s.endpoint_id = e.id AND s.active AND s.filter IS NOT NULL),
                '[]'::jsonb) AS filtered,
       e.retry_schedule, extract(epoch FROM e.max_age)::float8 AS max_age_seconds,
       e.client_certificate
  FROM outbox.endpoints e
 ORDER BY e.id
