-- Inbound webhooks (issue 12): third parties POST to outboxd's public listener
-- (OUTBOXD_INBOUND_LISTEN, `POST /in/{source}`); each verified request is stored raw and
-- relayed to internal endpoints as an ordinary event, in the same transaction.
--
-- Tables and what writes them:
--   sources           operators (outbox.add_source, the admin API /v1/sources)
--   inbound_requests  outboxd's inbound listener: one row per accepted request, exactly as
--                     received (method, path, query, headers, body bytes); append-only,
--                     deleted by retention (OUTBOXD_INBOUND_RETENTION)
--   events            + request_id: an event that relays a stored request. Its body is the
--                     request's body bytes with the request's content type, not `payload`
--                     (which is NULL for it): the bytes live once, in inbound_requests, as
--                     bytea, whatever their format (JSON, form-encoded, XML, binary), and a
--                     replay is a new event pointing at the same row.
--
-- Applications publish exactly as before: a JSON event has payload set and request_id NULL,
-- and pays nothing new (no trigger, no foreign key check; the new partial index only holds
-- rows with a request_id).

CREATE TABLE outbox.sources (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- In the URL (/in/{name}) and the event type (inbound.{name}).
    name              text        NOT NULL,
    -- standard-webhooks | hmac-sha256 | github | stripe | token | none
    verify            text        NOT NULL,
    -- Active secrets, newest first; a request verifies with any of them (rotation).
    secrets           text[]      NOT NULL DEFAULT '{}',
    -- hmac-sha256 and token: the header that carries the signature or token. NULL: the
    -- scheme's default (README "Receiving webhooks").
    signature_header  text,
    -- standard-webhooks and stripe: how far a signed timestamp may be from now.
    tolerance_seconds integer     NOT NULL DEFAULT 300,
    -- A JSON pointer into the body (/data/object/customer) or header:<name>.
    ordering_key      text,
    idempotency_key   text,
    event_type        text,
    -- The tenant of the relayed events (NULL: internal).
    tenant_id         text,
    max_body_bytes    integer     NOT NULL DEFAULT 1048576,
    -- Accepted requests per second, per replica; more are answered 429. NULL: no limit.
    rate_limit        double precision,
    -- A query parameter echoed back to a GET (verification handshakes, e.g. 'challenge' or
    -- 'hub.challenge'). NULL: GET is refused (405).
    get_challenge     text,
    enabled           boolean     NOT NULL DEFAULT true,
    description       text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sources_name_unique UNIQUE (name),
    CONSTRAINT sources_name_valid CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    CONSTRAINT sources_verify_valid CHECK (verify IN
        ('standard-webhooks', 'hmac-sha256', 'github', 'stripe', 'token', 'none')),
    CONSTRAINT sources_secrets_valid CHECK (cardinality(secrets) <= 10
        AND (verify = 'none' OR cardinality(secrets) >= 1)),
    CONSTRAINT sources_signature_header_valid CHECK (signature_header IS NULL
        OR signature_header ~ '^[!#$%&''*+.^_`|~0-9a-z-]{1,128}$'),
    CONSTRAINT sources_tolerance_valid CHECK (tolerance_seconds BETWEEN 1 AND 86400),
    CONSTRAINT sources_ordering_key_valid CHECK (ordering_key IS NULL
        OR (ordering_key ~ '^(/.*|header:[!#$%&''*+.^_`|~0-9a-z-]{1,128})$' AND length(ordering_key) <= 512)),
    CONSTRAINT sources_idempotency_key_valid CHECK (idempotency_key IS NULL
        OR (idempotency_key ~ '^(/.*|header:[!#$%&''*+.^_`|~0-9a-z-]{1,128})$' AND length(idempotency_key) <= 512)),
    CONSTRAINT sources_event_type_valid CHECK (event_type IS NULL
        OR (event_type ~ '^(/.*|header:[!#$%&''*+.^_`|~0-9a-z-]{1,128})$' AND length(event_type) <= 512)),
    CONSTRAINT sources_tenant_id_valid CHECK (tenant_id IS NULL OR length(tenant_id) BETWEEN 1 AND 255),
    -- 20 MiB is the hard cap: the whole body is held in memory until it is committed.
    CONSTRAINT sources_max_body_bytes_valid CHECK (max_body_bytes BETWEEN 1 AND 20971520),
    CONSTRAINT sources_rate_limit_valid CHECK (rate_limit IS NULL OR rate_limit > 0),
    CONSTRAINT sources_get_challenge_valid CHECK (get_challenge IS NULL
        OR length(get_challenge) BETWEEN 1 AND 128)
);

-- Every replica's inbound listener keeps the sources in memory; a change wakes them all.
CREATE FUNCTION outbox.notify_sources() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outboxd_sources', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER sources_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON outbox.sources
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.notify_sources();

-- One row per accepted request, exactly as received. `source` is the name (not a foreign
-- key): the audit outlives a deleted source. event_type, resource_key and tenant_id are what
-- the source's settings extracted when it was accepted, so a replay relays the same event.
CREATE TABLE outbox.inbound_requests (
    id              bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    source          text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    method          text        NOT NULL,
    path            text        NOT NULL,
    -- The raw query string (without '?'), NULL when there was none.
    query           text,
    -- [[name, value], ...] in arrival order, duplicates kept. Names are lower-case (HTTP
    -- names are case-insensitive); values are the bytes received read as ISO-8859-1, so
    -- even obs-text bytes round-trip exactly.
    headers         jsonb       NOT NULL,
    content_type    text,
    body            bytea       NOT NULL,
    idempotency_key text,
    event_type      text        NOT NULL,
    resource_key    text,
    tenant_id       text,
    -- The TCP peer (a load balancer's address when there is one; see the headers).
    peer            inet,
    CONSTRAINT inbound_requests_headers_array CHECK (jsonb_typeof(headers) = 'array')
);
-- A duplicate idempotency key (a provider's retry) stores nothing new.
CREATE UNIQUE INDEX inbound_requests_idempotency ON outbox.inbound_requests (source, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Replay (a source's requests in a time range, in order) and the audit view.
CREATE INDEX inbound_requests_source_received ON outbox.inbound_requests (source, received_at, id);
-- Bodies are written once and read by the relay: keep the write cheap, like payloads.
ALTER TABLE outbox.inbound_requests SET (autovacuum_vacuum_insert_scale_factor = 0.05);

ALTER TABLE outbox.events ADD COLUMN request_id bigint;
ALTER TABLE outbox.events ALTER COLUMN payload DROP NOT NULL;
-- Every row so far has a payload (it was NOT NULL until now): nothing to validate.
ALTER TABLE outbox.events ADD CONSTRAINT events_body_present
    CHECK (payload IS NOT NULL OR request_id IS NOT NULL) NOT VALID;
-- Retention keeps a request while an event relays it. Partial: applications' events (no
-- request_id) never enter it.
CREATE INDEX events_request_id ON outbox.events (request_id) WHERE request_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- SQL API
-- ---------------------------------------------------------------------------------------------

-- A key as stored: header names lower-case (HTTP names are case-insensitive), pointers as given.
CREATE FUNCTION outbox.source_key(k text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN k ILIKE 'header:%' THEN 'header:' || lower(substr(k, 8)) ELSE k END
$$;

-- Create a source; returns its id. `verify` is one of standard-webhooks, hmac-sha256, github,
-- stripe, token, none; every scheme but none needs a secret. The keys are a JSON pointer
-- ('/data/id') or 'header:<name>'. Without an idempotency key, standard-webhooks uses
-- header:webhook-id, github header:x-github-delivery and stripe /id.
CREATE FUNCTION outbox.add_source(
    name            text,
    verify          text,
    secret          text DEFAULT NULL,
    ordering_key    text DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    event_type      text DEFAULT NULL,
    tenant_id       text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    new_id bigint;
    keys   text[] := ARRAY[ordering_key, idempotency_key, event_type];
    k      text;
BEGIN
    IF verify IS NULL OR verify NOT IN ('standard-webhooks', 'hmac-sha256', 'github', 'stripe', 'token', 'none') THEN
        RAISE EXCEPTION 'verify must be one of standard-webhooks, hmac-sha256, github, stripe, token, none; got %',
            coalesce(quote_literal(verify), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF name IS NULL OR name !~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$' THEN
        RAISE EXCEPTION 'name must be 1-64 letters, digits, - or _ (it is part of the URL /in/{name}); got %',
            coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF verify <> 'none' AND (secret IS NULL OR secret = '') THEN
        RAISE EXCEPTION 'a % source needs a secret', verify
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF verify = 'standard-webhooks' AND (secret !~ '^whsec_[A-Za-z0-9+/=]+$'
        OR length(decode(substr(secret, 7), 'base64')) NOT BETWEEN 24 AND 64) THEN
        RAISE EXCEPTION 'a standard-webhooks secret is whsec_ and the base64 of 24 to 64 bytes'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH k IN ARRAY keys LOOP
        IF k IS NOT NULL AND (k !~* '^(/.*|header:[!#$%&''*+.^_`|~0-9a-z-]{1,128})$' OR length(k) > 512) THEN
            RAISE EXCEPTION 'a key is a JSON pointer (/data/id) or header:<name>; got %', quote_literal(k)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    INSERT INTO outbox.sources (name, verify, secrets, ordering_key, idempotency_key, event_type,
                                tenant_id)
    VALUES (add_source.name, add_source.verify,
            CASE WHEN add_source.secret IS NULL THEN '{}' ELSE ARRAY[add_source.secret] END,
            outbox.source_key(add_source.ordering_key),
            outbox.source_key(coalesce(add_source.idempotency_key,
                CASE add_source.verify WHEN 'standard-webhooks' THEN 'header:webhook-id'
                                       WHEN 'github' THEN 'header:x-github-delivery'
                                       WHEN 'stripe' THEN '/id' END)),
            outbox.source_key(add_source.event_type),
            add_source.tenant_id)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- Relay a source's stored requests again, in the order they arrived: one new event per
-- request received in [since, until) (until NULL: up to now). Returns how many. The requests
-- are locked while their events are inserted, so retention cannot delete one under them.
CREATE FUNCTION outbox.replay_source(name text, since timestamptz, until timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox.sources s WHERE s.name = replay_source.name) THEN
        RAISE EXCEPTION 'source % does not exist', quote_literal(replay_source.name)
            USING ERRCODE = 'no_data_found';
    END IF;
    WITH replayed AS (
        INSERT INTO outbox.events (event_type, resource_key, tenant_id, request_id)
        SELECT r.event_type, r.resource_key, r.tenant_id, r.id
          FROM (SELECT r.id, r.event_type, r.resource_key, r.tenant_id
                  FROM outbox.inbound_requests r
                 WHERE r.source = replay_source.name AND r.received_at >= replay_source.since
                   AND (replay_source.until IS NULL OR r.received_at < replay_source.until)
                 ORDER BY r.received_at, r.id
                   FOR KEY SHARE) r
         ORDER BY r.id
        RETURNING 1
    )
    SELECT count(*) INTO n FROM replayed;
    RETURN n;
END
$$;

-- The audit: every stored request with its body decoded where it is text, and how many
-- events relayed it (the original and replays) that are still kept.
CREATE FUNCTION outbox.utf8_or_null(b bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN convert_from(b, 'UTF8');
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE VIEW outbox.inbound_log AS
SELECT r.id, r.source, r.received_at, r.method, r.path, r.query, r.headers, r.content_type,
       length(r.body) AS body_bytes,
       outbox.utf8_or_null(r.body) AS body_text,
       r.body,
       r.idempotency_key, r.event_type, r.resource_key, r.tenant_id, r.peer,
       (SELECT count(*) FROM outbox.events e WHERE e.request_id = r.id) AS events
  FROM outbox.inbound_requests r;

-- ---------------------------------------------------------------------------------------------
-- Roles (sql/roles.sql, migration V4): V10's outbox.grant_roles() plus the objects above. The
-- reader never sees secrets, raw headers, query strings or bodies (no outbox.inbound_log).
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
