-- One migration run at a time (several replicas may start with OUTBOXD_MIGRATE together).
-- $1: crate::locks::MIGRATE. Session-level: released by migrate_unlock.sql.
SELECT pg_advisory_lock($1)
