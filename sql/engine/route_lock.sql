-- One router at a time: held until the routing transaction ends (also on a crash).
-- $1: crate::locks::ROUTER.
SELECT pg_try_advisory_xact_lock($1)
