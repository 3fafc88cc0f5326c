-- One migration run at a time (several replicas may start with OUTBOXD_MIGRATE together).
-- $1: crate::locks::MIGRATE. Transaction-level: the whole migration is one transaction, so
-- nothing outlives it (a session lock would stay on whichever server connection a
-- transaction-mode pooler ran it on).
SELECT pg_advisory_xact_lock($1)
