-- Write the settable columns of one subscription (PATCH merges into the locked row).
-- $1 subscription id, $2 event-type patterns, $3 active, $4 content filter (null: none)
UPDATE outbox.subscriptions s
   SET event_types = $2, active = $3, filter = $4, updated_at = now()
 WHERE s.id = $1
RETURNING s.id, s.endpoint_id, s.event_types, s.filter, s.active, s.created_at, s.updated_at
