-- Before migrating a large outbox to V20: build its one new index and drop the two it
-- replaces without blocking the router (a plain CREATE INDEX holds off inserts into
-- outbox.deliveries while it reads the whole table). The migration then finds the index and
-- skips it, and finds nothing left to drop. CONCURRENTLY cannot run in a transaction, so run
-- it with psql as it is:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/upgrade/V20_index_concurrently.sql
--   outboxd migrate
--
-- Old replicas keep working after it, but their lease rescue (every few seconds) scans for
-- expired leases without deliveries_leased: run it shortly before the new version takes
-- over. If it fails half-way the new index is left INVALID: DROP INDEX CONCURRENTLY
-- outbox.deliveries_lane_pending_head and run this again.

CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_lane_pending_head
    ON outbox.deliveries (endpoint_id, lane_key)
    WHERE lane_key IS NOT NULL AND NOT held AND state = 'pending';
DROP INDEX CONCURRENTLY IF EXISTS outbox.deliveries_lane_head;
DROP INDEX CONCURRENTLY IF EXISTS outbox.deliveries_leased;
