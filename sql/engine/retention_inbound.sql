-- Delete stored inbound requests received before the cutoff that no kept event relays (the
-- events go first, by their own retention), one window of the primary key at a time; the walk
-- ends at the first window that reaches requests newer than the cutoff (ids follow arrival).
-- A request being replayed is locked (FOR KEY SHARE in outbox.replay_source): skipped here,
-- so a replay never relays a request deleted under it.
-- $1 cursor (exclusive), $2 retention seconds, $3 window size
WITH win AS MATERIALIZED (
    SELECT r.id, r.received_at < now() - make_interval(secs => $2::float8) AS old
      FROM outbox.inbound_requests r
     WHERE r.id > $1
     ORDER BY r.id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM outbox.inbound_requests r USING win w
     WHERE r.id = w.id AND w.old
       AND NOT EXISTS (SELECT 1 FROM outbox.events e WHERE e.request_id = w.id)
    RETURNING 1
)
SELECT (SELECT max(w.id) FROM win w WHERE w.old) AS cursor,
       (SELECT count(*) FROM win w WHERE NOT w.old) AS newer,
       (SELECT count(*) FROM gone) AS requests
