-- Which index a search by types ($1) within a tenant ($2) should walk: how many events the
-- types have (every tenant's: events_event_type holds them all) and how many the tenant has
-- (outbox.event_types). The smaller one is walked, the other filter checked on the way.
-- A planning hint only: nothing of it is shown. `tenant_typed` is how many events of those
-- types the tenant has had routed: none, and a tenant's portal answers at once (without it,
-- the type's index would be walked to its end looking for them).
SELECT coalesce(sum(t.events) FILTER (WHERE t.event_type = ANY($1::text[])), 0)::bigint AS typed,
       coalesce(sum(t.events) FILTER (WHERE t.tenant_key = $2::text), 0)::bigint AS tenant,
       coalesce(sum(t.events) FILTER (WHERE t.tenant_key = $2::text
                                        AND t.event_type = ANY($1::text[])), 0)::bigint
           AS tenant_typed
  FROM outbox.event_types t
