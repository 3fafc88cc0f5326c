-- A page of deliveries in id order, with their event's event_id and type.
-- $1 id to start after (0 for the first page), $2 endpoint filter (null: all),
-- $3 state filter (null: all), $4 rows
SELECT d.id, ev.event_id, ev.event_type, d.endpoint_id, d.lane_key, d.state, d.held,
       d.attempt_count, d.next_attempt_at, d.last_status, d.last_error, d.created_at,
       d.updated_at, d.completed_at
  FROM outbox.deliveries d
  LEFT JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE d.id > $1
   AND ($2::bigint IS NULL OR d.endpoint_id = $2::bigint)
   AND ($3::text IS NULL OR d.state = $3::text)
 ORDER BY d.id
 LIMIT $4
