-- The oldest binary (by the newest migration it knows) that may run on this schema (V21); read
-- only when the schema is newer than this binary, for /readyz and start-up.
SELECT oldest_binary FROM outbox.schema_compatibility
