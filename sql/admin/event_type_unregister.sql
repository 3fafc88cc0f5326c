-- Remove an event type from the catalog (its counts stay): false when it was not registered.
-- $1 name
SELECT outbox.unregister_event_type($1::text) AS removed
