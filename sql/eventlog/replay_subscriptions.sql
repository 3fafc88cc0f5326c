-- The active subscriptions a replay to endpoint $1 goes through: their patterns and content
-- filters (null: none), matched per event as routing does (crate::router::filters).
SELECT s.id, s.event_types, s.filter
  FROM outbox.subscriptions s
 WHERE s.endpoint_id = $1::bigint AND s.active
 ORDER BY s.id
