-- Delete routed events before the boundary that have no deliveries left, one window of the
-- primary key at a time. Unrouted events are never touched, so publishers never wait.
-- $1 cursor (exclusive), $2 boundary (exclusive), $3 window size
WITH win AS (
    SELECT e.id, e.routed_at FROM outbox.events e
     WHERE e.id > $1 AND e.id < $2
     ORDER BY e.id
     LIMIT $3
),
gone AS (
    DELETE FROM outbox.events e USING win
     WHERE e.id = win.id AND win.routed_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM outbox.deliveries d WHERE d.event_pk = win.id)
    RETURNING 1
)
SELECT (SELECT max(id) FROM win) AS cursor, (SELECT count(*) FROM gone) AS events
