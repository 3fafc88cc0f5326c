-- Mutual TLS to endpoints (issue 13): an endpoint may present a client certificate, named
-- here and read by outboxd from OUTBOXD_CLIENT_CERT_DIR (<name>.crt + <name>.key, or
-- <name>/tls.crt + <name>/tls.key: a mounted Kubernetes Secret). The certificate and its key
-- are never stored in the database: only the name, confined to that directory (no '/', no
-- '..'; the same rule as src/delivery/http/identities.rs valid_name).
--
-- A nullable column without a default: no table rewrite. The CHECK reads the new column
-- only (NULL everywhere), so it is cheap on the small endpoints table.
ALTER TABLE outbox.endpoints
    ADD COLUMN client_certificate text,
    ADD CONSTRAINT endpoints_client_certificate_valid CHECK (
        client_certificate IS NULL
        OR (client_certificate ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$'
            AND strpos(client_certificate, '..') = 0));

COMMENT ON COLUMN outbox.endpoints.client_certificate IS
    'Name of the client certificate this endpoint presents (mutual TLS): files <name>.crt and <name>.key (or <name>/tls.crt and tls.key) in OUTBOXD_CLIENT_CERT_DIR; NULL: none.';

-- add_endpoint gains client_certificate, last and defaulted, so every call that worked
-- before (positional or with filter => …) still does. Dropped and created again rather than
-- overloaded: with two versions a five-argument call would be ambiguous. It has no grants of
-- its own (the schema owner's, as before).
DROP FUNCTION outbox.add_endpoint(text, text[], text, text, text);

CREATE FUNCTION outbox.add_endpoint(
    url                text,
    event_types        text[] DEFAULT '{*}',
    tenant_id          text DEFAULT NULL,
    secret             text DEFAULT NULL,
    filter             text DEFAULT NULL,
    client_certificate text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    new_id bigint;
BEGIN
    IF secret IS NOT NULL AND secret !~ '^whsec_[A-Za-z0-9+/=]+$' THEN
        RAISE EXCEPTION 'secret must look like whsec_<base64>, got something else'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO outbox.endpoints (url, tenant_id, secrets, client_certificate)
    VALUES (add_endpoint.url, add_endpoint.tenant_id,
            ARRAY[coalesce(add_endpoint.secret, outbox.new_secret())],
            add_endpoint.client_certificate)
    RETURNING id INTO new_id;
    INSERT INTO outbox.subscriptions (endpoint_id, event_types, filter)
    VALUES (new_id, add_endpoint.event_types, add_endpoint.filter);
    RETURN new_id;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Roles (sql/roles.sql, migration V4): V15's outbox.grant_roles(), with the new column in
-- outboxd_reader's column list. outboxd_runtime reads and writes whole endpoint rows (table
-- privileges), so sql/engine/missing_privileges.sql needs nothing new.
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
        -- The tenant portal (V15): the link key, written at start-up.
        GRANT EXECUTE ON FUNCTION outbox.set_portal_key(bytea, text) TO outboxd_runtime;
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
        -- The tenant portal (V15): links for its customers.
        GRANT EXECUTE ON FUNCTION outbox.portal_link(text, interval, boolean)
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
        -- client_certificate (V17) is a name of files outboxd reads, not a secret.
        GRANT SELECT (id, url, tenant_id, all_tenants, enabled, max_in_flight, rate_limit,
                      description, disabled_reason, created_at, updated_at, retry_schedule,
                      max_age, client_certificate)
           ON outbox.endpoints TO outboxd_reader;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.grant_roles() FROM PUBLIC;
