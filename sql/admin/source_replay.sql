-- Relay a source's stored requests received in [since, until) again, in arrival order
-- (outbox.replay_source: one new event per request). Returns how many.
-- $1 name, $2 since, $3 until (null: up to now)
SELECT outbox.replay_source($1::text, $2::timestamptz, $3::timestamptz) AS replayed
