-- Issue 13, continued: content filters see inbound requests (V11) too, and the event-type
-- catalog (extending V9's outbox.event_types).
--
-- An event that relays an inbound request has no payload (events.payload is NULL; the body
-- is outbox.inbound_requests.body, bytea). Routing and replays (sql/engine/route_insert.sql)
-- give its filters the request body as the payload when the content type is JSON
-- (application/json or application/<anything>+json, any parameters) and the body parses as
-- UTF-8 JSON; otherwise the JSON null, on which a lax path finds nothing (false, not an error).
-- $headers holds the request's headers as the receiver gets them: x-inbound-<name>, names in
-- lower case, the last value of a repeated header.

-- The payload a filter sees for stored request $1. NULL when the request is gone (retention).
-- An exception block, so a body that is not JSON after all cannot fail a routing batch; called
-- only for events without a payload.
CREATE FUNCTION outbox.inbound_payload(request_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    ct text;
    raw bytea;
BEGIN
    SELECT i.content_type, i.body INTO ct, raw
      FROM outbox.inbound_requests i WHERE i.id = inbound_payload.request_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF ct IS NULL OR ct !~* '^\s*application/([a-z0-9.!#$&^_-]+\+)?json\s*(;|$)' THEN
        RETURN 'null'::jsonb;
    END IF;
    BEGIN
        RETURN convert_from(raw, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN 'null'::jsonb;
    END;
END
$$;

-- The headers a filter sees ($headers) for stored request $1, as outbox.filter_vars takes them.
CREATE FUNCTION outbox.inbound_headers(request_id bigint) RETURNS jsonb
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(jsonb_object_agg('x-inbound-' || lower(h.pair->>0), h.pair->1 ORDER BY h.n),
                    '{}'::jsonb)
      FROM outbox.inbound_requests i
     CROSS JOIN LATERAL jsonb_array_elements(i.headers) WITH ORDINALITY AS h(pair, n)
     WHERE i.id = inbound_headers.request_id
$$;

-- ---------------------------------------------------------------------------------------------
-- The event-type catalog
-- ---------------------------------------------------------------------------------------------

-- Decided: the catalog extends V9's outbox.event_types (per-tenant counts of the types seen)
-- rather than a second table. A type is registered once for everyone, on its tenant_key = ''
-- row, which also counts the events published without a tenant: registering a type that was
-- never seen adds that row with events = 0. So one table answers "which types exist": the
-- registered ones (registered_at set) with their documentation, and those only seen, with
-- counts. The router's per-batch upsert is unchanged (it never touches these columns).
ALTER TABLE outbox.event_types
    -- When it was registered; NULL: only seen in the outbox, not in the catalog.
    ADD COLUMN registered_at timestamptz,
    ADD COLUMN description text,
    -- A JSON Schema document for the payload (documentation: routing does not validate).
    ADD COLUMN schema jsonb,
    -- An example payload: what "send test event" sends and the portal shows.
    ADD COLUMN example jsonb,
    ADD COLUMN deprecated boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT event_types_catalog_is_global CHECK (
        tenant_key = '' OR (registered_at IS NULL AND description IS NULL AND schema IS NULL
                            AND example IS NULL AND NOT deprecated)),
    ADD CONSTRAINT event_types_schema_is_a_schema CHECK (
        schema IS NULL OR jsonb_typeof(schema) IN ('object', 'boolean')),
    ADD CONSTRAINT event_types_description_length CHECK (length(description) <= 10000);

-- Register (or update) an event type in the catalog. Exact names only: no patterns. Bumps the
-- configuration version, so routers see OUTBOXD_STRICT_EVENT_TYPES's list change at their
-- next batch. Returns true when the type was not registered before.
CREATE FUNCTION outbox.register_event_type(
    name        text,
    description text DEFAULT NULL,
    schema      jsonb DEFAULT NULL,
    example     jsonb DEFAULT NULL,
    deprecated  boolean DEFAULT false
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    was_registered boolean;
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.:/-]{1,255}$' THEN
        RAISE EXCEPTION 'name must be 1-255 letters, digits, or . _ : / - (an exact type, no pattern); got %',
            coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF schema IS NOT NULL AND jsonb_typeof(schema) NOT IN ('object', 'boolean') THEN
        RAISE EXCEPTION 'schema must be a JSON Schema (an object or a boolean), got a JSON %',
            jsonb_typeof(schema)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT t.registered_at IS NOT NULL INTO was_registered
      FROM outbox.event_types t
     WHERE t.tenant_key = '' AND t.event_type = register_event_type.name
       FOR UPDATE;
    INSERT INTO outbox.event_types AS t (tenant_key, event_type, events, first_seen, last_seen,
                                         registered_at, description, schema, example, deprecated)
    VALUES ('', register_event_type.name, 0, now(), now(), now(),
            register_event_type.description, register_event_type.schema,
            register_event_type.example, coalesce(register_event_type.deprecated, false))
    ON CONFLICT (tenant_key, event_type) DO UPDATE
       SET registered_at = coalesce(t.registered_at, now()),
           description = excluded.description,
           schema = excluded.schema,
           example = excluded.example,
           deprecated = excluded.deprecated;
    UPDATE outbox.config_version SET version = version + 1;
    RETURN NOT coalesce(was_registered, false);
END
$$;

-- Remove a type from the catalog (its counts stay). Returns false when it was not registered.
CREATE FUNCTION outbox.unregister_event_type(name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n int;
BEGIN
    UPDATE outbox.event_types t
       SET registered_at = NULL, description = NULL, schema = NULL, example = NULL,
           deprecated = false
     WHERE t.tenant_key = '' AND t.event_type = unregister_event_type.name
       AND t.registered_at IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- Registered but never seen: nothing left to count.
    DELETE FROM outbox.event_types t
     WHERE t.tenant_key = '' AND t.event_type = unregister_event_type.name AND t.events = 0
       AND t.registered_at IS NULL;
    IF n > 0 THEN
        UPDATE outbox.config_version SET version = version + 1;
    END IF;
    RETURN n > 0;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Roles (sql/roles.sql, migration V4): V11's outbox.grant_roles() plus the objects above.
-- The reader never sees secrets, raw headers, query strings or bodies (unchanged).
-- sql/engine/missing_privileges.sql lists the same for `outboxd run`.
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION outbox.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_runtime') THEN
        -- `outboxd run`: the engine and the admin API.
        GRANT USAGE ON SCHEMA outbox TO outboxd_runtime;
        GRANT SELECT ON outbox.schema_history TO outboxd_runtime;
        -- INSERT: test events (sql/eventlog/endpoint_test_event.sql).
        -- (Inbound, V11: requests are relayed as events by the listener and replays.)
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
        -- Inbound webhooks (V11): sources (/v1/sources), stored requests (the listener
        -- stores, the worker reads bodies, retention deletes; UPDATE for its row locks),
        -- their ids, replay, and event ids of the events that relay them.
        GRANT SELECT, INSERT, UPDATE, DELETE ON outbox.sources TO outboxd_runtime;
        GRANT SELECT, INSERT, UPDATE, DELETE ON outbox.inbound_requests TO outboxd_runtime;
        GRANT USAGE ON SEQUENCE outbox.inbound_requests_id_seq TO outboxd_runtime;
        GRANT EXECUTE ON FUNCTION outbox.new_event_id(),
              outbox.replay_source(text, timestamptz, timestamptz)
           TO outboxd_runtime;
        -- Filters on inbound events (V14): routing reads the stored request for them.
        GRANT EXECUTE ON FUNCTION outbox.inbound_payload(bigint), outbox.inbound_headers(bigint)
           TO outboxd_runtime;
        -- The event-type catalog (V14): /v1/event-types registers and removes types.
        GRANT DELETE ON outbox.event_types TO outboxd_runtime;
        GRANT EXECUTE ON FUNCTION
              outbox.register_event_type(text, text, jsonb, jsonb, boolean),
              outbox.unregister_event_type(text)
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
        GRANT SELECT (id, event_id, event_type, resource_key, tenant_id, created_at, routed_at,
                      request_id)
           ON outbox.events TO outboxd_reader;
        -- Inbound (V11): sources without their secrets, stored requests without their
        -- headers, query string or body (any of them may carry a provider's credentials).
        GRANT SELECT (id, name, verify, signature_header, tolerance_seconds, ordering_key,
                      idempotency_key, event_type, tenant_id, max_body_bytes, rate_limit,
                      get_challenge, enabled, description, created_at, updated_at)
           ON outbox.sources TO outboxd_reader;
        GRANT SELECT (id, source, received_at, method, path, content_type, idempotency_key,
                      event_type, resource_key, tenant_id, peer)
           ON outbox.inbound_requests TO outboxd_reader;
        GRANT SELECT (id, url, tenant_id, all_tenants, enabled, max_in_flight, rate_limit,
                      description, disabled_reason, created_at, updated_at, retry_schedule,
                      max_age)
           ON outbox.endpoints TO outboxd_reader;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.grant_roles() FROM PUBLIC;
