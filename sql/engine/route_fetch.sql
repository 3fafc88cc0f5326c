-- The oldest visible, not yet routed events, an equal share per tenant so that one tenant's
-- burst does not hold up the others (events_unrouted_tenant, a loose index scan over the
-- tenants with a backlog). Within a tenant, id order. At most $1 events from at most $1
-- tenants, starting after tenant $2 (the last one the previous batch served) and wrapping
-- around, so with more tenants than fit in a batch every tenant still gets its turn.
-- Rows come interleaved (each tenant's oldest, then each tenant's second, ...), so a batch
-- cut short by the fan-out limit is still shared fairly. Never the payload.
-- $1 batch size, $2 cursor (a tenant, '' for tenant-less events)
WITH RECURSIVE after_cursor(t) AS (
    (SELECT coalesce(e.tenant_id, '') FROM outbox.events e
      WHERE e.routed_at IS NULL AND coalesce(e.tenant_id, '') > $2::text
      ORDER BY coalesce(e.tenant_id, '') LIMIT 1)
  UNION ALL
    SELECT (SELECT coalesce(e.tenant_id, '') FROM outbox.events e
             WHERE e.routed_at IS NULL AND coalesce(e.tenant_id, '') > a.t
             ORDER BY coalesce(e.tenant_id, '') LIMIT 1)
      FROM after_cursor a
     WHERE a.t IS NOT NULL
),
up_to_cursor(t) AS (
    (SELECT coalesce(e.tenant_id, '') FROM outbox.events e
      WHERE e.routed_at IS NULL AND coalesce(e.tenant_id, '') <= $2::text
      ORDER BY coalesce(e.tenant_id, '') LIMIT 1)
  UNION ALL
    SELECT (SELECT coalesce(e.tenant_id, '') FROM outbox.events e
             WHERE e.routed_at IS NULL AND coalesce(e.tenant_id, '') > u.t
               AND coalesce(e.tenant_id, '') <= $2::text
             ORDER BY coalesce(e.tenant_id, '') LIMIT 1)
      FROM up_to_cursor u
     WHERE u.t IS NOT NULL
),
tenants AS MATERIALIZED (
    SELECT w.t, row_number() OVER () AS turn
      FROM ((SELECT a.t, 1 AS part FROM after_cursor a WHERE a.t IS NOT NULL LIMIT $1)
            UNION ALL
            (SELECT u.t, 2 AS part FROM up_to_cursor u WHERE u.t IS NOT NULL LIMIT $1)) w
     LIMIT $1
),
-- Each tenant may fill up to 2 shares, so a quiet tenant's unused share goes to a busy one;
-- reads stay bounded by 2 x $1 rows (one tenant alone: a plain range scan of $1 rows).
share AS (
    SELECT least($1::bigint, ceil(2 * $1::bigint::float8 / greatest(count(*), 1))::bigint) AS n
      FROM tenants
)
SELECT p.id, p.event_id, p.event_type, p.resource_key, p.tenant_id
  FROM tenants t
 CROSS JOIN share s
 CROSS JOIN LATERAL (
        SELECT e.id, e.event_id, e.event_type, e.resource_key, e.tenant_id,
               row_number() OVER (ORDER BY e.id) AS rank
          FROM (SELECT e.id, e.event_id, e.event_type, e.resource_key, e.tenant_id
                  FROM outbox.events e
                 WHERE e.routed_at IS NULL AND coalesce(e.tenant_id, '') = t.t
                 ORDER BY coalesce(e.tenant_id, ''), e.id
                 LIMIT s.n) e
       ) p
 ORDER BY p.rank, t.turn
 LIMIT $1
