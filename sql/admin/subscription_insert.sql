-- Create a subscription (patterns validated by the caller).
-- $1 endpoint id, $2 event-type patterns, $3 active
INSERT INTO outbox.subscriptions AS s (endpoint_id, event_types, active)
VALUES ($1, $2, $3)
RETURNING s.id, s.endpoint_id, s.event_types, s.active, s.created_at, s.updated_at
