-- The oldest visible, not yet routed events (events_unrouted partial index). Never the payload.
-- $1 batch size
SELECT id, event_id, event_type, resource_key, tenant_id
  FROM outbox.events
 WHERE routed_at IS NULL
 ORDER BY id
 LIMIT $1
