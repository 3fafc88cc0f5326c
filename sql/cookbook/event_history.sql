-- Everything that happened to one event (by its webhook-id): deliveries and attempts.
-- Replace the literal with the event_id you are looking for.
SELECT d.id AS delivery_id, d.endpoint_id, d.state, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.error_kind, a.error_message, a.next_attempt_at
  FROM outbox.events e
  JOIN outbox.deliveries d ON d.event_pk = e.id
  LEFT JOIN outbox.attempts a ON a.delivery_id = d.id
 WHERE e.event_id = 'evt_replace_me'
 ORDER BY d.id, a.attempt;
