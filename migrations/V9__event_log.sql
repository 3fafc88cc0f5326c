-- The event log (issue 10): what the console (/ui/) and the search API (GET /v1/events)
-- read, and the functions their actions call.
--
-- Indexes. Each search answers newest first (by events.id) from an index in that order, so a
-- page costs the same with 10 k or 10 M events behind it (docs/explain/ shows the plans on
-- 10 M events / 25 M deliveries; BENCHMARKS.md what they cost publishing and delivery).
-- On a large outbox, build them beforehand with sql/cookbook/event_log_indexes.sql
-- (CREATE INDEX CONCURRENTLY, which never blocks publishers); this migration then finds
-- them and only creates what is missing. Without that, each CREATE INDEX below holds off
-- INSERTs into its table while it runs (about a minute per 10 M rows).

-- Search by resource_key (exact). Keys are not limited in length; an index entry is, so the
-- index holds the first 200 characters and the query re-checks the whole key.
CREATE INDEX IF NOT EXISTS events_resource_key
    ON outbox.events ((left(resource_key, 200)), id) WHERE resource_key IS NOT NULL;
-- Search by event type (exact, or each type a pattern stands for: see event_types below).
CREATE INDEX IF NOT EXISTS events_event_type ON outbox.events (event_type, id);
-- Search by tenant, and every page of a tenant's portal (issue 11).
CREATE INDEX IF NOT EXISTS events_tenant ON outbox.events (tenant_id, id)
    WHERE tenant_id IS NOT NULL;

-- What the event log calls a delivery's status: its state, with `pending` split in three.
--   pending     waiting for its first attempt (or revived by an operator)
--   held        waiting behind an earlier delivery of the same resource (its lane head)
--   retrying    pending after at least one failed attempt
--   delivering  in flight, leased by a replica
--   succeeded, dead
CREATE OR REPLACE FUNCTION outbox.delivery_status(state text, held boolean, attempt_count integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
             WHEN state = 'pending' AND held THEN 'held'
             WHEN state = 'pending' AND attempt_count > 0 THEN 'retrying'
             ELSE state
           END
$$;

-- Deliveries by status, newest event first: the status filter (a backwards scan of one
-- status's range). Succeeded ones have an index of their own: succeeded is most deliveries,
-- so the planner's statistics promise one in the first few newest deliveries and it would
-- walk deliveries_event_pk through the whole backlog (which sits exactly there) instead;
-- that partial index holds nothing else and wins. The other statuses' index holds only
-- unfinished and dead deliveries: the backlog's size, not the table's.
CREATE INDEX IF NOT EXISTS deliveries_status
    ON outbox.deliveries (outbox.delivery_status(state, held, attempt_count), event_pk)
    WHERE state <> 'succeeded';
CREATE INDEX IF NOT EXISTS deliveries_succeeded
    ON outbox.deliveries (event_pk) WHERE state = 'succeeded';
-- An endpoint's deliveries by status, newest event first: the endpoint filter (with a status,
-- one range; without, the six ranges merged), the endpoint page's counts.
CREATE INDEX IF NOT EXISTS deliveries_endpoint_status
    ON outbox.deliveries (endpoint_id, outbox.delivery_status(state, held, attempt_count), event_pk);
-- The head of each lane (the delivery a held one waits behind): one entry per busy lane.
CREATE INDEX IF NOT EXISTS deliveries_lane_head
    ON outbox.deliveries (endpoint_id, lane_key)
    WHERE lane_key IS NOT NULL AND NOT held AND state IN ('pending', 'delivering');

-- The event types seen, per tenant ('' for events without one), with counts: the type
-- picker, GET /v1/event-types, and searches for a pattern such as `order.*` (which become
-- one index scan per matching type). The router adds each batch's counts in its routing
-- transaction (sql/engine/route_event_types.sql); one router runs at a time, so the rows are
-- never contended. Counts are of events routed since this table exists (retention does not
-- subtract), starting from the events already routed when it was created.
CREATE TABLE outbox.event_types (
    tenant_key text        NOT NULL,
    event_type text        NOT NULL,
    events     bigint      NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (tenant_key, event_type)
);
CREATE INDEX event_types_event_type ON outbox.event_types (event_type);

INSERT INTO outbox.event_types (tenant_key, event_type, events, first_seen, last_seen)
SELECT coalesce(tenant_id, ''), event_type, count(*), min(created_at), max(created_at)
  FROM outbox.events
 WHERE routed_at IS NOT NULL
 GROUP BY 1, 2;

-- Put finished deliveries back in their lanes: `dead` ones (retry) or `succeeded` ones
-- (resend; same event, so the same webhook-id). The steps of outbox.retry_dead, for any set
-- of deliveries of any endpoints: lock their lanes in the engine's order, make them pending
-- (held when ordered), count them into their lanes, and let the oldest one of a lane that had
-- nothing else in flight lead it. A requeued delivery therefore goes after the work its lane
-- holds now, and before anything routed later. Returns how many were requeued.
CREATE FUNCTION outbox.requeue(delivery_ids bigint[], from_state text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
    idle_endpoints bigint[];
    idle_keys text[];
BEGIN
    IF from_state NOT IN ('dead', 'succeeded') THEN
        RAISE EXCEPTION 'from_state must be dead or succeeded, got %', from_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM outbox.lanes l
      WHERE (l.endpoint_id, l.lane_key) IN (
              SELECT d.endpoint_id, d.lane_key FROM outbox.deliveries d
               WHERE d.id = ANY(requeue.delivery_ids) AND d.state = requeue.from_state
                 AND d.lane_key IS NOT NULL)
      ORDER BY l.endpoint_id, l.lane_key
        FOR UPDATE;
    WITH revived AS (
        UPDATE outbox.deliveries d
           SET state = 'pending', held = d.lane_key IS NOT NULL, attempt_count = 0,
               next_attempt_at = now(), completed_at = NULL, updated_at = now()
         WHERE d.id = ANY(requeue.delivery_ids) AND d.state = requeue.from_state
        RETURNING d.endpoint_id, d.lane_key
    ), per_lane AS (
        SELECT r.endpoint_id, r.lane_key, count(*)::int AS n FROM revived r
         WHERE r.lane_key IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ), bumped AS (
        INSERT INTO outbox.lanes AS l (endpoint_id, lane_key, pending)
        SELECT p.endpoint_id, p.lane_key, p.n FROM per_lane p
        ON CONFLICT (endpoint_id, lane_key)
        DO UPDATE SET pending = l.pending + excluded.pending, updated_at = now()
        RETURNING l.endpoint_id, l.lane_key, l.pending
    )
    SELECT (SELECT count(*) FROM revived),
           (SELECT array_agg(b.endpoint_id ORDER BY b.endpoint_id, b.lane_key)
              FROM bumped b JOIN per_lane p USING (endpoint_id, lane_key) WHERE b.pending = p.n),
           (SELECT array_agg(b.lane_key ORDER BY b.endpoint_id, b.lane_key)
              FROM bumped b JOIN per_lane p USING (endpoint_id, lane_key) WHERE b.pending = p.n)
      INTO n, idle_endpoints, idle_keys;
    UPDATE outbox.deliveries d SET held = false, next_attempt_at = now(), updated_at = now()
     WHERE d.id IN (SELECT (SELECT h.id FROM outbox.deliveries h
                             WHERE h.endpoint_id = k.endpoint_id AND h.lane_key = k.lane_key
                               AND h.held ORDER BY h.id LIMIT 1)
                      FROM unnest(coalesce(idle_endpoints, '{}'), coalesce(idle_keys, '{}'))
                           AS k(endpoint_id, lane_key));
    RETURN n;
END
$$;

-- outbox.retry_dead (V1) becomes outbox.requeue of an endpoint's dead deliveries: one
-- implementation of "back into the lane" for the DBAs' function, the admin API and the
-- console.
CREATE OR REPLACE FUNCTION outbox.retry_dead(endpoint_id bigint, delivery_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT outbox.requeue(
               ARRAY(SELECT d.id FROM outbox.deliveries d
                      WHERE d.endpoint_id = retry_dead.endpoint_id AND d.state = 'dead'
                        AND (retry_dead.delivery_id IS NULL OR d.id = retry_dead.delivery_id)
                      ORDER BY d.id),
               'dead')
$$;

-- The roles' privileges (V4's outbox.grant_roles, as V8 left it) with this migration's
-- objects: the runtime counts and reads outbox.event_types, inserts test events, and
-- requeues; readers see the types and their counts (no payloads) and may call
-- delivery_status. sql/engine/missing_privileges.sql lists the runtime's part too.
CREATE OR REPLACE FUNCTION outbox.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_runtime') THEN
        -- `outboxd run`: the engine and the admin API.
        GRANT USAGE ON SCHEMA outbox TO outboxd_runtime;
        GRANT SELECT ON outbox.schema_history TO outboxd_runtime;
        -- INSERT: test events (sql/eventlog/endpoint_test_event.sql).
        GRANT SELECT, INSERT, UPDATE, DELETE ON outbox.events TO outboxd_runtime;
        GRANT SELECT, INSERT, UPDATE, DELETE
           ON outbox.endpoints, outbox.subscriptions, outbox.deliveries, outbox.lanes
           TO outboxd_runtime;
        -- Changing endpoints or subscriptions bumps the configuration version (trigger).
        GRANT SELECT, UPDATE ON outbox.config_version TO outboxd_runtime;
        GRANT SELECT, INSERT, DELETE ON outbox.attempts TO outboxd_runtime;
        -- The stats lease (sql/engine/stats_lease.sql, stats_release.sql).
        GRANT SELECT, INSERT, UPDATE, DELETE ON outbox.leaders TO outboxd_runtime;
        -- The event types seen (the router counts them; the event log reads them).
        GRANT SELECT, INSERT, UPDATE ON outbox.event_types TO outboxd_runtime;
        GRANT EXECUTE ON FUNCTION outbox.new_secret(), outbox.rotate_secret(bigint, text),
              outbox.finish_secret_rotation(bigint), outbox.retry_dead(bigint, bigint),
              outbox.requeue(bigint[], text), outbox.delivery_status(text, boolean, integer)
           TO outboxd_runtime;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_publisher') THEN
        -- The application: INSERT, or outbox.publish(). `id` and `event_id` only, so that
        -- INSERT … RETURNING and outbox.publish() can return them; never the payloads.
        GRANT USAGE ON SCHEMA outbox TO outboxd_publisher;
        GRANT INSERT ON outbox.events TO outboxd_publisher;
        GRANT SELECT (id, event_id) ON outbox.events TO outboxd_publisher;
        GRANT EXECUTE ON FUNCTION outbox.publish(text, jsonb, text, text, jsonb, text),
              outbox.new_event_id(), outbox.router_busy()
           TO outboxd_publisher;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_reader') THEN
        -- DBAs and dashboards: the views and the cookbook's read queries, never payloads,
        -- event or endpoint headers, or secrets.
        GRANT USAGE ON SCHEMA outbox TO outboxd_reader;
        GRANT SELECT ON outbox.lag, outbox.endpoint_health, outbox.recent_failures,
              outbox.dead_deliveries, outbox.deliveries, outbox.attempts, outbox.subscriptions,
              outbox.lanes, outbox.schema_history, outbox.leaders, outbox.event_types
           TO outboxd_reader;
        GRANT EXECUTE ON FUNCTION outbox.delivery_status(text, boolean, integer)
           TO outboxd_reader;
        GRANT SELECT (id, event_id, event_type, resource_key, tenant_id, created_at, routed_at)
           ON outbox.events TO outboxd_reader;
        GRANT SELECT (id, url, tenant_id, all_tenants, enabled, max_in_flight, rate_limit,
                      description, disabled_reason, created_at, updated_at)
           ON outbox.endpoints TO outboxd_reader;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.grant_roles() FROM PUBLIC;
