-- One subscription. $1 subscription id
SELECT s.id, s.endpoint_id, s.event_types, s.filter, s.active, s.created_at, s.updated_at
  FROM outbox.subscriptions s
 WHERE s.id = $1
