-- Before migrating a large outbox to V9 (the event log): build its indexes without blocking
-- publishers. CREATE INDEX CONCURRENTLY takes longer than a plain build but lets INSERTs go
-- on; the migration then finds the indexes and skips them (CREATE INDEX IF NOT EXISTS).
-- Run it with psql, statement by statement (CONCURRENTLY cannot run in a transaction):
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/upgrade/V9_indexes_concurrently.sql
--   outboxd migrate
--
-- On 10 M events / 25 M deliveries each took about a minute on two busy cores (BENCHMARKS.md,
-- "Console"). If one fails half-way it is left INVALID: DROP INDEX CONCURRENTLY it and run
-- that statement again. The function the status indexes use comes first (the migration
-- replaces it with the same definition).

CREATE OR REPLACE FUNCTION outbox.delivery_status(state text, held boolean, attempt_count integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
             WHEN state = 'pending' AND held THEN 'held'
             WHEN state = 'pending' AND attempt_count > 0 THEN 'retrying'
             ELSE state
           END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS events_resource_key
    ON outbox.events ((left(resource_key, 200)), id) WHERE resource_key IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_event_type ON outbox.events (event_type, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_tenant ON outbox.events (tenant_id, id)
    WHERE tenant_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_status
    ON outbox.deliveries (outbox.delivery_status(state, held, attempt_count), event_pk)
    WHERE state <> 'succeeded';
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_succeeded
    ON outbox.deliveries (event_pk) WHERE state = 'succeeded';
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_endpoint_status
    ON outbox.deliveries (endpoint_id, outbox.delivery_status(state, held, attempt_count), event_pk);
CREATE INDEX CONCURRENTLY IF NOT EXISTS deliveries_lane_head
    ON outbox.deliveries (endpoint_id, lane_key)
    WHERE lane_key IS NOT NULL AND NOT held AND state IN ('pending', 'delivering');
