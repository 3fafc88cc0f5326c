-- Every delivery with its event, for the demo's table.
SELECT d.id, d.endpoint_id, e.event_type, e.resource_key, d.state, d.attempt_count
  FROM outbox.deliveries d
  JOIN outbox.events e ON e.id = d.event_pk
 ORDER BY d.id
