-- Fair routing across tenants (issue 3, isolation): the router used to take unrouted events
-- in global id order, so one tenant publishing a burst of a million events delayed every
-- other tenant's events by the whole routing backlog. It now walks the tenants that have
-- unrouted events (a loose index scan of this index) and takes an equal share of each, oldest
-- first. Order within a tenant is still id order. Tenant-less events are the tenant ''
-- (tenant_id is never empty: events_tenant_id_valid).
-- Partial, like events_unrouted: it holds only the routing backlog, so routing costs the same
-- with 10 k or 10 M routed rows behind it.
CREATE INDEX events_unrouted_tenant ON outbox.events ((coalesce(tenant_id, '')), id)
    WHERE routed_at IS NULL;
