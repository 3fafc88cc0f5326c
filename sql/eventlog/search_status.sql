-- Events with a delivery in status $9, on any endpoint in scope, newest first: one backwards
-- scan of deliveries_succeeded, or of the status's range of deliveries_status (the CASE, made
-- constant by the planner, is what lets it use those partial indexes). OFFSET 0 keeps that
-- scan the driving one (else a selective filter on events, a tenant say, can make the
-- planner walk the events and probe deliveries, which is slow when few of them match). An
-- event with that status on two endpoints appears twice (the caller keeps one). $2 rows; the
-- rest: search_filter.sql.
SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
  FROM (SELECT d.event_pk, d.endpoint_id
          FROM outbox.deliveries d
         WHERE outbox.delivery_status(d.state, d.held, d.attempt_count) = $9::text
           AND CASE WHEN $9::text = 'succeeded' THEN d.state = 'succeeded'
                    ELSE d.state <> 'succeeded' END
           AND d.event_pk < $1::bigint
         ORDER BY d.event_pk DESC
        OFFSET 0) d
  JOIN outbox.endpoints e ON e.id = d.endpoint_id
  JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE ($3::text IS NULL OR e.tenant_id = $3::text)
   AND /*filter*/
 ORDER BY d.event_pk DESC
 LIMIT $2
