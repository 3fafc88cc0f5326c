-- The first event created after the cutoff (events_created_at index): everything with a
-- smaller id is older than the retention period. No such event: one past the newest.
-- $1 retention seconds
SELECT coalesce(
    (SELECT id FROM outbox.events
      WHERE created_at >= now() - make_interval(secs => $1::float8)
      ORDER BY created_at LIMIT 1),
    (SELECT max(id) + 1 FROM outbox.events),
    0)::bigint
