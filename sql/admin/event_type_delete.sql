-- Unregister an event type (its counts in outbox.event_type_stats stay). $1 name
DELETE FROM outbox.event_types t WHERE t.name = $1 RETURNING t.name
