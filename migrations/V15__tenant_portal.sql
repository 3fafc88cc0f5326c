-- The tenant portal (issue 11; README "Give your customers a portal").
--
-- A portal link is a signed, expiring grant for one tenant: `…/ui/portal?link=<grant>.<mac>`
-- where <grant> is base64url JSON ({"v":1,"t":tenant,"exp":unix seconds,"ro":read_only,…}) and
-- <mac> base64url HMAC-SHA256(link key, 'outboxd portal link v1.' || <grant>). outboxd signs
-- links for POST /v1/portal-links; applications that only speak SQL call
-- outbox.portal_link(tenant_id, ttl), which signs the same way here.
--
-- The link key is derived by outboxd from OUTBOXD_PORTAL_KEY (or the admin token) and
-- written at start-up through outbox.set_portal_key(); the key itself never reaches the
-- database. The table has no privileges for anybody but its owner: only the two SECURITY
-- DEFINER functions below read or write it. Rotating OUTBOXD_PORTAL_KEY replaces the row at
-- the next start, so links signed with the old key (here or by outboxd) stop working.
--
-- HMAC-SHA256 is computed with the built-in sha256() (PostgreSQL 11+), not pgcrypto: no
-- extension to install or allow.

CREATE TABLE outbox.portal_keys (
    -- One row.
    id         boolean     PRIMARY KEY DEFAULT true CHECK (id),
    link_key   bytea       NOT NULL CHECK (length(link_key) = 32),
    -- Where browsers reach outboxd (OUTBOXD_PORTAL_URL, else its listen address).
    base_url   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON outbox.portal_keys FROM PUBLIC;

-- RFC 2104 HMAC with SHA-256 (block size 64).
CREATE FUNCTION outbox.hmac_sha256(key bytea, msg bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k bytea := CASE WHEN length(key) > 64 THEN sha256(key) ELSE key END;
    ipad bytea;
    opad bytea;
BEGIN
    k := k || decode(repeat('00', 64 - length(k)), 'hex');
    ipad := k;
    opad := k;
    FOR i IN 0..63 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);  -- 0x36
        opad := set_byte(opad, i, get_byte(k, i) # 92);  -- 0x5c
    END LOOP;
    RETURN sha256(opad || sha256(ipad || msg));
END
$$;

CREATE FUNCTION outbox.base64url(b bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT rtrim(translate(replace(encode(b, 'base64'), E'\n', ''), '+/', '-_'), '=')
$$;

-- outboxd run, at start: the link key and the base URL of links.
CREATE FUNCTION outbox.set_portal_key(link_key bytea, base_url text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO outbox.portal_keys AS k (id, link_key, base_url)
    VALUES (true, set_portal_key.link_key, set_portal_key.base_url)
    ON CONFLICT (id) DO UPDATE
       SET link_key = excluded.link_key, base_url = excluded.base_url, updated_at = now()
     WHERE (k.link_key, k.base_url) IS DISTINCT FROM (excluded.link_key, excluded.base_url)
$$;
REVOKE EXECUTE ON FUNCTION outbox.set_portal_key(bytea, text) FROM PUBLIC;

-- A portal link for one tenant, valid `ttl` for opening (the session it starts lasts
-- OUTBOXD_CONSOLE_SESSION_TTL, 12 h by default). For applications that only speak SQL:
--   SELECT outbox.portal_link('acme');
CREATE FUNCTION outbox.portal_link(tenant_id text, ttl interval DEFAULT interval '15 minutes',
                                   read_only boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k outbox.portal_keys%ROWTYPE;
    grant_text text;
BEGIN
    IF tenant_id IS NULL OR tenant_id = '' OR length(tenant_id) > 200 THEN
        RAISE EXCEPTION 'portal_link: tenant_id must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ttl IS NULL OR ttl < interval '1 second' OR ttl > interval '1 day' THEN
        RAISE EXCEPTION 'portal_link: ttl must be between 1 second and 1 day'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO k FROM outbox.portal_keys WHERE id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'portal_link: no portal key yet'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'start outboxd run once: it stores the portal link key at start-up';
    END IF;
    grant_text := outbox.base64url(convert_to(jsonb_build_object(
        'v', 1, 't', tenant_id,
        'exp', floor(extract(epoch FROM clock_timestamp() + ttl))::bigint,
        'ro', coalesce(read_only, false))::text, 'UTF8'));
    RETURN k.base_url || '/ui/portal?link=' || grant_text || '.'
        || outbox.base64url(outbox.hmac_sha256(k.link_key,
               convert_to('outboxd portal link v1.' || grant_text, 'UTF8')));
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.portal_link(text, interval, boolean) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Roles (sql/roles.sql, migration V4): V14's outbox.grant_roles() plus the objects above.
-- outboxd_runtime stores the key; outboxd_publisher (the application) makes links. Nobody
-- reads outbox.portal_keys directly. sql/engine/missing_privileges.sql lists the same for
-- `outboxd run`.
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
        GRANT SELECT (id, url, tenant_id, all_tenants, enabled, max_in_flight, rate_limit,
                      description, disabled_reason, created_at, updated_at, retry_schedule,
                      max_age)
           ON outbox.endpoints TO outboxd_reader;
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION outbox.grant_roles() FROM PUBLIC;
