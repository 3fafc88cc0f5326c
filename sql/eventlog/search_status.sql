-- Events with a delivery in status $9 (not succeeded: those are the partial index's), on any
-- endpoint in scope, newest first: per endpoint, a backwards scan of its range of
-- deliveries_endpoint_status stopping after $2 rows, merged (a loose index scan over the
-- endpoints). An event with that status on two endpoints appears twice (the caller keeps
-- one). $2 rows; the rest: search_filter.sql.
SELECT x.id, x.event_id, x.event_type, x.resource_key, x.tenant_id, x.created_at
  FROM outbox.endpoints e
 CROSS JOIN LATERAL (
        SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
          FROM outbox.deliveries d
          JOIN outbox.events ev ON ev.id = d.event_pk
         WHERE d.endpoint_id = e.id
           AND outbox.delivery_status(d.state, d.held, d.attempt_count) = $9::text
           AND d.state <> 'succeeded'
           AND d.event_pk < $1::bigint
           AND /*filter*/
         ORDER BY d.event_pk DESC
         LIMIT $2) x
 WHERE ($3::text IS NULL OR e.tenant_id = $3::text)
 ORDER BY x.id DESC
 LIMIT $2
