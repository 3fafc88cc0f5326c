-- Register an event type (validated by the caller); no row when it is already registered.
-- $1 name, $2 description, $3 schema, $4 example, $5 deprecated
INSERT INTO outbox.event_types AS t (name, description, schema, example, deprecated)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT ON CONSTRAINT event_types_pkey DO NOTHING
RETURNING t.name
