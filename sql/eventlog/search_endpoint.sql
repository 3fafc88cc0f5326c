-- Events delivered to one endpoint ($8), newest first, from its deliveries:
-- deliveries_endpoint_event, or deliveries_endpoint_status when a status other than
-- succeeded is asked for ($9). An event replayed to the endpoint appears once per delivery
-- (the caller keeps one). $2 rows; the rest: search_filter.sql.
SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
  FROM outbox.deliveries d
  JOIN outbox.endpoints e ON e.id = d.endpoint_id
  JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE d.endpoint_id = $8::bigint
   AND d.event_pk < $1::bigint
   AND ($9::text IS NULL
        OR outbox.delivery_status(d.state, d.held, d.attempt_count) = $9::text)
   -- Lets the planner use the partial index (it cannot tell that a status other than
   -- succeeded implies this).
   AND ($9::text IS NULL OR $9::text = 'succeeded' OR d.state <> 'succeeded')
   AND ($3::text IS NULL OR e.tenant_id = $3::text)
   AND /*filter*/
 ORDER BY d.event_pk DESC
 LIMIT $2
