-- The next window of events a replay considers for endpoint $1: routed events after $2
-- (events.id), created in [$3, $4) ($4 null: no end), that the endpoint can receive by
-- tenant ($5 its tenant; $6 all_tenants for an internal one), that are the first published
-- with their event_id (later copies are never delivered), and that have no delivery to the
-- endpoint still on its way. At most $7, in id order; the caller matches the types against
-- the subscriptions (crate::pattern, as routing does) and keeps its cursor at the last id.
-- events_tenant for a tenant's endpoint, the primary key otherwise.
SELECT ev.id, ev.event_type, ev.resource_key, ev.tenant_id
  FROM outbox.events ev
 WHERE ev.id > $2::bigint
   AND ev.routed_at IS NOT NULL
   AND ev.created_at >= $3::timestamptz
   AND ($4::timestamptz IS NULL OR ev.created_at < $4::timestamptz)
   AND CASE WHEN $5::text IS NOT NULL THEN ev.tenant_id = $5::text
            WHEN $6::boolean THEN true
            ELSE ev.tenant_id IS NULL END
   AND NOT EXISTS (SELECT 1 FROM outbox.events f
                    WHERE f.event_id = ev.event_id AND f.id < ev.id)
   AND NOT EXISTS (SELECT 1 FROM outbox.deliveries d
                    WHERE d.event_pk = ev.id AND d.endpoint_id = $1::bigint
                      AND d.state IN ('pending', 'delivering'))
 ORDER BY ev.id
 LIMIT $7
