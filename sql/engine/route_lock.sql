-- One router at a time: held until the routing transaction ends (also on a crash).
SELECT pg_try_advisory_xact_lock(7355608002)
