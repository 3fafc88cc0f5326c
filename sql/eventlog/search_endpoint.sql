-- Events delivered to one endpoint ($8), newest first, from its deliveries: one backwards
-- scan of its range of deliveries_endpoint_status per status ($9, or all six), each stopping
-- after $2 rows, merged. An event replayed to the endpoint appears once per delivery (the
-- caller keeps one). $2 rows; the rest: search_filter.sql.
SELECT x.id, x.event_id, x.event_type, x.resource_key, x.tenant_id, x.created_at
  FROM unnest(CASE WHEN $9::text IS NULL
                   THEN ARRAY['pending', 'held', 'retrying', 'delivering', 'succeeded', 'dead']
                   ELSE ARRAY[$9::text] END) AS s(status)
 CROSS JOIN LATERAL (
        SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
          FROM outbox.deliveries d
          JOIN outbox.endpoints e ON e.id = d.endpoint_id
          JOIN outbox.events ev ON ev.id = d.event_pk
         WHERE d.endpoint_id = $8::bigint
           AND outbox.delivery_status(d.state, d.held, d.attempt_count) = s.status
           AND d.event_pk < $1::bigint
           AND ($3::text IS NULL OR e.tenant_id = $3::text)
           AND /*filter*/
         ORDER BY d.event_pk DESC
         LIMIT $2) x
 ORDER BY x.id DESC
 LIMIT $2
