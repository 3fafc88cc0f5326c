-- The newest migration applied (refinery's history table); for /readyz and start-up.
SELECT max(version) FROM outbox.schema_history
