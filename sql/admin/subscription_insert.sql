-- Create a subscription (patterns and filter validated by the caller).
-- $1 endpoint id, $2 event-type patterns, $3 active, $4 content filter (null: none)
INSERT INTO outbox.subscriptions AS s (endpoint_id, event_types, active, filter)
VALUES ($1, $2, $3, $4)
RETURNING s.id, s.endpoint_id, s.event_types, s.filter, s.active, s.created_at, s.updated_at
