-- The registered event types (strict routing refuses the others).
SELECT t.name FROM outbox.event_types t
