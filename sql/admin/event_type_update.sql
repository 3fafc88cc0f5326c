-- Write the settable columns of one registered event type (PATCH merges into the locked row).
-- $1 name, $2 description, $3 schema, $4 example, $5 deprecated
UPDATE outbox.event_types t
   SET description = $2, schema = $3, example = $4, deprecated = $5, updated_at = now()
 WHERE t.name = $1
RETURNING t.name
