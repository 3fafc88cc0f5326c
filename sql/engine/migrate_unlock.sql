-- $1: crate::locks::MIGRATE.
SELECT pg_advisory_unlock($1)
