-- One replica runs a retention batch at a time.
SELECT pg_try_advisory_xact_lock(7355608003)
