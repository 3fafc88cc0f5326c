-- Delete succeeded deliveries of events before the boundary, with their attempts, one window
-- of the deliveries_event_pk index at a time (the cursor skips what must stay, e.g. dead).
-- $1 cursor (exclusive), $2 boundary (exclusive), $3 window size
WITH win AS (
    SELECT d.id, d.event_pk, d.state FROM outbox.deliveries d
     WHERE d.event_pk > $1 AND d.event_pk < $2
     ORDER BY d.event_pk
     LIMIT $3
),
gone AS (
    DELETE FROM outbox.deliveries d USING win
     WHERE d.id = win.id AND win.state = 'succeeded' AND d.state = 'succeeded'
    RETURNING d.id
),
gone_attempts AS (
    DELETE FROM outbox.attempts a USING gone WHERE a.delivery_id = gone.id RETURNING 1
)
SELECT (SELECT max(event_pk) FROM win) AS cursor,
       (SELECT count(*) FROM gone) AS deliveries,
       (SELECT count(*) FROM gone_attempts) AS attempts
