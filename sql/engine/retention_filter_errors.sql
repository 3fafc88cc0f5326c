-- Forget filter errors older than the cutoff (the dead-work retention). $1 retention seconds,
-- $2 batch
DELETE FROM outbox.filter_errors f
 WHERE f.id IN (SELECT id FROM outbox.filter_errors
                 WHERE created_at < now() - make_interval(secs => $1::float8)
                 ORDER BY created_at
                 LIMIT $2)
