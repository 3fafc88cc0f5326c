-- The deliveries of one event (at most one per endpoint). $1 events.id
SELECT d.id, ev.event_id, ev.event_type, d.endpoint_id, d.lane_key, d.state, d.held,
       d.attempt_count, d.next_attempt_at, d.last_status, d.last_error, d.created_at,
       d.updated_at, d.completed_at
  FROM outbox.deliveries d
  JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE d.event_pk = $1
 ORDER BY d.id
