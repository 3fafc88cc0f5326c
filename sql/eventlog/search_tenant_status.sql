-- Events with a delivery in status $9 (null: any) to one of the endpoints that can hold a
-- tenant's deliveries, newest first: in a tenant's portal (scope $3) its own endpoints; for an
-- operator asking for tenant $7, that tenant's endpoints and those with all_tenants (an
-- endpoint without a tenant gets tenants' events only with all_tenants). One backwards scan of deliveries_endpoint_status per
-- endpoint of the tenant and status, each stopping after $2 rows, merged; so the cost follows
-- the tenant's endpoints and one page, not every tenant's deliveries in that status (what
-- search_status.sql would walk). The tenant's endpoints come from outbox.endpoints (a small
-- table). An event with that status on two endpoints appears twice (the caller keeps one).
-- $2 rows; the rest: search_filter.sql.
SELECT x.id, x.event_id, x.event_type, x.resource_key, x.tenant_id, x.created_at
  FROM outbox.endpoints e
 CROSS JOIN unnest(CASE WHEN $9::text IS NULL
                        THEN ARRAY['pending', 'held', 'retrying', 'delivering', 'succeeded', 'dead']
                        ELSE ARRAY[$9::text] END) AS s(status)
 CROSS JOIN LATERAL (
        SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
          FROM outbox.deliveries d
          JOIN outbox.events ev ON ev.id = d.event_pk
         WHERE d.endpoint_id = e.id
           AND outbox.delivery_status(d.state, d.held, d.attempt_count) = s.status
           AND d.event_pk < $1::bigint
           AND /*filter*/
         ORDER BY d.event_pk DESC
         LIMIT $2) x
 WHERE CASE WHEN $3::text IS NOT NULL THEN e.tenant_id = $3::text
            ELSE e.tenant_id = $7::text OR e.all_tenants END
 ORDER BY x.id DESC
 LIMIT $2
