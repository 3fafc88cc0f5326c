-- One replica runs a retention batch at a time. $1: crate::locks::RETENTION.
SELECT pg_try_advisory_xact_lock($1)
