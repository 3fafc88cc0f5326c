-- Subscriptions that say exactly what they want (issue 13):
--   * content filters on subscriptions (SQL/JSON path), evaluated by PostgreSQL while routing;
--   * a retry policy per endpoint.

-- ---------------------------------------------------------------------------------------------
-- Content filters
-- ---------------------------------------------------------------------------------------------

-- The variables a filter can use besides the payload ($): $tenant_id, $event_type,
-- $resource_key (text or null) and $headers (the event's extra headers, names in lower case;
-- {} when it has none). Built the same way for routing (sql/engine/route_filter.sql) and for a
-- DBA trying a filter by hand:
--   SELECT jsonb_path_match(e.payload, '$.amount > 1000', outbox.filter_vars(e.tenant_id,
--          e.event_type, e.resource_key, e.headers)) FROM outbox.events e WHERE ...
CREATE FUNCTION outbox.filter_vars(tenant_id text, event_type text, resource_key text,
                                   headers jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'tenant_id', tenant_id,
        'event_type', event_type,
        'resource_key', resource_key,
        'headers', coalesce((SELECT jsonb_object_agg(lower(h.key), h.value)
                               FROM jsonb_each(headers) AS h), '{}'::jsonb))
$$;

-- Is this a filter routing can evaluate? Raises PostgreSQL's own jsonpath syntax error, or an
-- error naming a variable that routing does not provide (jsonb_path_match raises on an unknown
-- variable even with silent => true, so such a filter would fail every routing batch it met).
-- Used by the subscriptions' CHECK and by the admin API before it saves (a 400 naming
-- `filter`). True for NULL (no filter).
CREATE FUNCTION outbox.check_filter(filter text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    -- The canonical text prints every variable as $"name" and every string (keys too) in
    -- double quotes with JSON escapes, so one pass that skips strings finds every variable.
    chars text[];
    n int;
    i int := 1;
    start int;
    name text;
BEGIN
    IF filter IS NULL THEN
        RETURN true;
    END IF;
    IF length(filter) > 4096 THEN
        RAISE EXCEPTION 'a filter is at most 4096 characters long, this one has %', length(filter)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    chars := string_to_array(filter::jsonpath::text, NULL);
    n := cardinality(chars);
    WHILE i <= n LOOP
        IF chars[i] = '"' THEN
            start := i;
            i := i + 1;
            WHILE i <= n AND chars[i] <> '"' LOOP
                IF chars[i] = '\' THEN
                    i := i + 1;
                END IF;
                i := i + 1;
            END LOOP;
            IF start > 1 AND chars[start - 1] = '$' THEN
                name := array_to_string(chars[start + 1:i - 1], '');
                IF name NOT IN ('tenant_id', 'event_type', 'resource_key', 'headers') THEN
                    RAISE EXCEPTION 'unknown variable $% in filter: the variables are $tenant_id, $event_type, $resource_key and $headers',
                        name USING ERRCODE = 'invalid_parameter_value';
                END IF;
            END IF;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN true;
END
$$;

ALTER TABLE outbox.subscriptions
    -- SQL/JSON path over the payload; the event is routed to the subscription's endpoint when it
    -- is true. NULL: no filter (every event of the subscribed types).
    ADD COLUMN filter text,
    ADD CONSTRAINT subscriptions_filter_valid CHECK (outbox.check_filter(filter));

-- Routing evaluates filters with jsonb_path_match(..., silent => true): data errors (a missing
-- field in strict mode, a type mismatch, a non-boolean result) give NULL instead of raising.
-- A few errors are raised even then (comparing a date with a timestamptz from .datetime());
-- the router then evaluates that batch again row by row with this function, so one payload
-- cannot stop routing. One subtransaction per call (about 10x the cost of the plain call), so
-- it is the fallback, not the rule.
CREATE FUNCTION outbox.filter_match_safe(payload jsonb, filter jsonpath, vars jsonb)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN jsonb_path_match(payload, filter, vars, true);
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- Why a filter did not give true or false on a payload (for outbox.filter_errors).
CREATE FUNCTION outbox.filter_error_message(payload jsonb, filter jsonpath, vars jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM jsonb_path_match(payload, filter, vars, false);
    RETURN 'the filter''s result is unknown: a comparison could not be made (in strict mode a '
        || 'missing field; or values of different types, e.g. a string compared with a number)';
EXCEPTION WHEN others THEN
    RETURN SQLERRM;
END
$$;

-- One row per (event, subscription) whose filter errored at routing: that subscription did not
-- take the event (another matching subscription of the same endpoint still can). Written in
-- the routing transaction; deleted by retention after OUTBOXD_RETENTION_DEAD.
CREATE TABLE outbox.filter_errors (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    subscription_id bigint      NOT NULL,
    endpoint_id     bigint      NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    filter          text        NOT NULL,
    message         text        NOT NULL
);
CREATE INDEX filter_errors_created_at ON outbox.filter_errors (created_at);
CREATE INDEX filter_errors_subscription ON outbox.filter_errors (subscription_id, id);

-- ---------------------------------------------------------------------------------------------
-- Per-endpoint retry policy
-- ---------------------------------------------------------------------------------------------

-- A retry schedule in OUTBOXD_RETRY_SCHEDULE's syntax: comma-separated durations such as
-- 5s,30s,2m or 1h30m, each greater than zero (the units of the humantime crate).
CREATE FUNCTION outbox.check_retry_schedule(schedule text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT schedule IS NULL OR (
        length(schedule) <= 1000
        AND EXISTS (SELECT 1 FROM unnest(string_to_array(schedule, ',')) AS p
                     WHERE btrim(p) <> '')
        AND NOT EXISTS (
            SELECT 1 FROM unnest(string_to_array(schedule, ',')) AS p
             WHERE btrim(p) <> ''
               AND (btrim(p) !~ ('^(\d+(\.\d+)?\s*(nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|'
                                || 'minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|'
                                || 'months|month|M|years|year|yrs|yr|y)\s*)+$')
                    OR btrim(p) !~ '[1-9]'))
    )
$$;

ALTER TABLE outbox.endpoints
    -- Overrides OUTBOXD_RETRY_SCHEDULE for this endpoint when not NULL.
    ADD COLUMN retry_schedule text,
    -- Overrides OUTBOXD_MAX_AGE for this endpoint when not NULL.
    ADD COLUMN max_age interval,
    ADD CONSTRAINT endpoints_retry_schedule_valid CHECK (outbox.check_retry_schedule(retry_schedule)),
    ADD CONSTRAINT endpoints_max_age_valid CHECK (max_age IS NULL OR max_age > interval '0');

-- add_endpoint gains a filter for the subscription it creates. Dropped and created again
-- rather than overloaded: with two versions a four-argument call would be ambiguous.
DROP FUNCTION outbox.add_endpoint(text, text[], text, text);

CREATE FUNCTION outbox.add_endpoint(
    url         text,
    event_types text[] DEFAULT '{*}',
    tenant_id   text DEFAULT NULL,
    secret      text DEFAULT NULL,
    filter      text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    new_id bigint;
BEGIN
    IF secret IS NOT NULL AND secret !~ '^whsec_[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'secret must look like whsec_<base64>, got something else'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO outbox.endpoints (url, tenant_id, secrets)
    VALUES (add_endpoint.url, add_endpoint.tenant_id,
            ARRAY[coalesce(add_endpoint.secret, outbox.new_secret())])
    RETURNING id INTO new_id;
    INSERT INTO outbox.subscriptions (endpoint_id, event_types, filter)
    VALUES (new_id, add_endpoint.event_types, add_endpoint.filter);
    RETURN new_id;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Least-privilege roles (sql/roles.sql, migration V4)
-- ---------------------------------------------------------------------------------------------

-- Replaces V9's function with one that also grants on what this migration adds (V4's comment:
-- a migration that adds objects replaces it). Kept in step with
-- sql/engine/missing_privileges.sql (tests/spec/database.rs).
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
        -- Routing records filter errors (retention deletes them).
        GRANT SELECT, INSERT, DELETE ON outbox.filter_errors TO outboxd_runtime;
        GRANT EXECUTE ON FUNCTION outbox.check_filter(text),
              outbox.filter_vars(text, text, text, jsonb),
              outbox.filter_match_safe(jsonb, jsonpath, jsonb),
              outbox.filter_error_message(jsonb, jsonpath, jsonb),
              outbox.check_retry_schedule(text)
           TO outboxd_runtime;
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
        -- Filter errors without PostgreSQL's message, which can quote a payload value.
        GRANT SELECT (id, created_at, subscription_id, endpoint_id, event_id, event_type, filter)
           ON outbox.filter_errors TO outboxd_reader;
        GRANT SELECT (id, event_id, event_type, resource_key, tenant_id, created_at, routed_at)
           ON outbox.events TO outboxd_reader;
        GRANT SELECT (id, url, tenant_id, all_tenants, enabled, max_in_flight, rate_limit,
                      description, disabled_reason, created_at, updated_at, retry_schedule,
                      max_age)
           ON outbox.endpoints TO outboxd_reader;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.grant_roles() FROM PUBLIC;
