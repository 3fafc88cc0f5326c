-- Before migrating a large outbox to V19: build its one index without blocking the router
-- (a plain CREATE INDEX holds off inserts into outbox.deliveries while it reads the whole
-- table). The migration then finds the index and skips it (CREATE INDEX IF NOT EXISTS).
-- CONCURRENTLY cannot run in a transaction, so run it with psql as it is:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/upgrade/V19_index_concurrently.sql
--   outboxd migrate
--
-- If it fails half-way the index is left INVALID: DROP INDEX CONCURRENTLY
-- outbox.deliveries_pending_created and run this again.

CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_pending_created
    ON outbox.deliveries (created_at) WHERE state = 'pending' AND NOT held;
