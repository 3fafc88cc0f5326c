-- The gauge outboxd_oldest_pending_delivery_age_seconds (sql/engine/stats.sql) read the oldest
-- pending delivery's created_at with a sequential scan of outbox.deliveries, every
-- OUTBOXD_STATS_INTERVAL: 0.3 s per refresh with 1 M deliveries, seconds with 10 M, on the
-- replica holding the stats lease, growing with succeeded rows as much as with the backlog
-- (issue 16, "Growth"). This index answers it with one probe. It holds only pending deliveries
-- that are not held (due or waiting for a retry), so it is the backlog's size; an entry is
-- added when a delivery is created, promoted or put back for a retry, always at its right
-- edge (created_at grows), and never when it is claimed or finished.
--
-- On a large outbox, build it first without blocking the router (CREATE INDEX CONCURRENTLY):
-- sql/upgrade/V19_index_concurrently.sql; this migration then finds it and skips it.
CREATE INDEX IF NOT EXISTS deliveries_pending_created
    ON outbox.deliveries (created_at) WHERE state = 'pending' AND NOT held;
