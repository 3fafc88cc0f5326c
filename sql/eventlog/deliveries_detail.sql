-- Deliveries in full: those of one event ($1 events.id) or one delivery ($2), to endpoints in
-- scope ($3 tenant; null: any). For a held delivery, the head of its lane (what it waits
-- behind: a pending head in deliveries_lane_pending_head, else a delivering one in its
-- endpoint's 'delivering' range of deliveries_endpoint_status, which holds what is in flight)
-- and how many held ones are ahead of it (deliveries_held, counted up to 10 000).
SELECT d.id, d.event_pk, ev.event_id, d.endpoint_id, e.url AS endpoint_url, d.lane_key,
       outbox.delivery_status(d.state, d.held, d.attempt_count) AS status, d.attempt_count,
       d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.updated_at,
       d.completed_at,
       CASE WHEN d.held THEN
           coalesce(
               (SELECT h.id FROM outbox.deliveries h
                 WHERE h.endpoint_id = d.endpoint_id AND h.lane_key = d.lane_key
                   AND h.lane_key IS NOT NULL AND NOT h.held AND h.state = 'pending'
                 LIMIT 1),
               (SELECT h.id FROM outbox.deliveries h
                 WHERE h.endpoint_id = d.endpoint_id
                   AND outbox.delivery_status(h.state, h.held, h.attempt_count) = 'delivering'
                   AND h.state = 'delivering' AND h.lane_key = d.lane_key
                 LIMIT 1))
       END AS waiting_behind,
       CASE WHEN d.held THEN
           (SELECT count(*) FROM (SELECT 1 FROM outbox.deliveries h
                                   WHERE h.endpoint_id = d.endpoint_id
                                     AND h.lane_key = d.lane_key AND h.held AND h.id < d.id
                                   LIMIT 10000) ahead)
       END AS held_ahead
  FROM outbox.deliveries d
  JOIN outbox.endpoints e ON e.id = d.endpoint_id
  JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE ($1::bigint IS NULL OR d.event_pk = $1::bigint)
   AND ($2::bigint IS NULL OR d.id = $2::bigint)
   AND ($3::text IS NULL OR e.tenant_id = $3::text)
 ORDER BY d.endpoint_id, d.id
