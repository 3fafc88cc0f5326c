-- Jobs that one replica at a time does for a while (issue 15): today only 'stats', the replica
-- that exports the database-wide gauges of /metrics, so that sum() over replicas does not
-- count the backlog once per replica. The holder renews its row well before expires_at; when
-- it stops (crash, partition) another replica takes the row over once expires_at has passed;
-- a replica that shuts down deletes its row so another takes over at once.
-- A table rather than a session advisory lock: it needs no dedicated connection and works
-- through a transaction-mode pooler. DBAs see who holds what: SELECT * FROM outbox.leaders.
CREATE TABLE outbox.leaders (
    role       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
