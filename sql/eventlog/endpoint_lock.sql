-- One endpoint in scope ($2 tenant; null: any), locked for an operator's change (secret
-- rotation, replay's final step). $1 endpoint id
SELECT e.id, e.tenant_id, e.all_tenants, e.enabled,
       coalesce((SELECT array_agg(p ORDER BY p)
                   FROM outbox.subscriptions s, unnest(s.event_types) AS p
                  WHERE s.endpoint_id = e.id AND s.active), '{}') AS patterns
  FROM outbox.endpoints e
 WHERE e.id = $1::bigint
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
   FOR UPDATE OF e
