-- Register or update an event type (outbox.register_event_type, V14): true when it is new.
-- $1 name, $2 description, $3 JSON Schema, $4 example payload, $5 deprecated
SELECT outbox.register_event_type($1::text, $2::text, $3::jsonb, $4::jsonb, $5::boolean) AS created
