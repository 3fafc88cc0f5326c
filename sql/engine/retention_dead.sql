-- Delete dead deliveries that died before the cutoff, with their attempts.
-- $1 retention seconds, $2 batch
WITH gone AS (
    DELETE FROM outbox.deliveries d
     WHERE d.id IN (SELECT id FROM outbox.deliveries
                     WHERE state = 'dead'
                       AND completed_at < now() - make_interval(secs => $1::float8)
                     LIMIT $2
                       FOR UPDATE SKIP LOCKED)
    RETURNING d.id
),
gone_attempts AS (
    DELETE FROM outbox.attempts a USING gone WHERE a.delivery_id = gone.id RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS deliveries, (SELECT count(*) FROM gone_attempts) AS attempts
