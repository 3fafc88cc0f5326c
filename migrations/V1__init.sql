-- outboxd schema, version 1.
--
-- Tables and what writes them:
--   events         the application (INSERT, in its own transaction); outboxd only sets routed_at
--   endpoints      operators (outbox.add_endpoint, admin API); outboxd sets enabled=false on 410
--   subscriptions  operators
--   deliveries     outboxd: one row per (event, matching endpoint); small, mutable state
--   lanes          outboxd: one row per (endpoint, resource_key) with work in flight; the lock
--                  that keeps routing and completion of one resource serialized
--   attempts       outboxd: append-only, one row per HTTP attempt
--
-- Payloads live only in events (written once, never rewritten: the routed_at update keeps the
-- TOASTed payload in place), so the tables that churn (deliveries, lanes) have small rows.

CREATE SCHEMA IF NOT EXISTS outbox;

-- A time-ordered unique id (like UUIDv7): 12 hex digits of unix milliseconds, then 16 random
-- hex digits. Time order keeps the event_id index append-mostly on a 10-million-row table.
CREATE FUNCTION outbox.new_event_id() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT 'evt_'
      || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
      || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)
$$;

CREATE TABLE outbox.events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text        NOT NULL DEFAULT outbox.new_event_id(),
    event_type   text        NOT NULL,
    resource_key text,
    tenant_id    text,
    payload      jsonb       NOT NULL,
    headers      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Set by the router in the transaction that creates the event's deliveries.
    routed_at    timestamptz,
    CONSTRAINT events_event_id_valid CHECK (length(event_id) BETWEEN 1 AND 255),
    CONSTRAINT events_event_type_valid CHECK (length(event_type) BETWEEN 1 AND 255),
    CONSTRAINT events_tenant_id_valid CHECK (tenant_id IS NULL OR length(tenant_id) BETWEEN 1 AND 255),
    CONSTRAINT events_headers_object CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object')
);

-- The router's work queue: visible, not yet routed events in id order. Partial, so it holds
-- only the backlog and costs the same with 10 k or 10 M routed rows behind it.
CREATE INDEX events_unrouted ON outbox.events (id) WHERE routed_at IS NULL;
-- Idempotency (same event_id published twice => one delivery per endpoint) and DBA look-ups.
CREATE INDEX events_event_id ON outbox.events (event_id);
-- Retention and "events of the last hour" queries.
CREATE INDEX events_created_at ON outbox.events (created_at);

-- Low latency without load: wake the router when events arrive, but only when it is idle.
-- While another transaction's unrouted event is visible the router is busy and polls by
-- itself, so a busy outbox pays one index probe per INSERT statement and no NOTIFY (whose
-- commit-time lock would serialize publishers' commits). A transaction notifies at most once.
CREATE FUNCTION outbox.notify_router() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('outboxd.notified', true) IS DISTINCT FROM 'on'
       AND NOT EXISTS (
           SELECT 1 FROM outbox.events e
            WHERE e.routed_at IS NULL AND e.xmin <> pg_current_xact_id()::xid)
    THEN
        PERFORM pg_notify('outboxd_events', '');
        PERFORM set_config('outboxd.notified', 'on', true);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify_router
    AFTER INSERT ON outbox.events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.notify_router();

-- Secrets are Standard Webhooks secrets: 'whsec_' + base64 of 24..64 random bytes.
CREATE FUNCTION outbox.new_secret() RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT 'whsec_' || encode(decode(replace(gen_random_uuid()::text, '-', '')
                                || replace(gen_random_uuid()::text, '-', ''), 'hex'), 'base64')
$$;

CREATE TABLE outbox.endpoints (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url             text        NOT NULL,
    -- NULL: an internal endpoint. It receives events without a tenant, and every tenant's
    -- events only when all_tenants is set explicitly.
    tenant_id       text,
    all_tenants     boolean     NOT NULL DEFAULT false,
    -- Active signing secrets, newest first; one signature per secret is sent during rotation.
    secrets         text[]      NOT NULL DEFAULT ARRAY[outbox.new_secret()],
    headers         jsonb       NOT NULL DEFAULT '{}',
    enabled         boolean     NOT NULL DEFAULT true,
    max_in_flight   integer     NOT NULL DEFAULT 16,
    rate_limit      double precision,
    description     text        NOT NULL DEFAULT '',
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT endpoints_url_valid CHECK (url ~* '^https?://' AND length(url) <= 2048),
    CONSTRAINT endpoints_secrets_present CHECK (cardinality(secrets) BETWEEN 1 AND 10),
    CONSTRAINT endpoints_headers_object CHECK (jsonb_typeof(headers) = 'object'),
    CONSTRAINT endpoints_max_in_flight_valid CHECK (max_in_flight BETWEEN 1 AND 1000),
    CONSTRAINT endpoints_rate_limit_valid CHECK (rate_limit IS NULL OR rate_limit > 0)
);

CREATE TABLE outbox.subscriptions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id bigint      NOT NULL REFERENCES outbox.endpoints (id) ON DELETE CASCADE,
    -- Event-type patterns: exact ('invoice.paid') or with '*' wildcards ('order.*', '*').
    event_types text[]      NOT NULL,
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_event_types_present CHECK (cardinality(event_types) BETWEEN 1 AND 1000)
);
CREATE INDEX subscriptions_endpoint_id ON outbox.subscriptions (endpoint_id);

-- Routing configuration changes wake every replica so it reloads endpoints and subscriptions.
CREATE TABLE outbox.config_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO outbox.config_version VALUES (true, 1);

CREATE FUNCTION outbox.bump_config_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE outbox.config_version SET version = version + 1;
    PERFORM pg_notify('outboxd_config', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER endpoints_config_changed AFTER INSERT OR UPDATE OR DELETE ON outbox.endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.bump_config_version();
CREATE TRIGGER subscriptions_config_changed AFTER INSERT OR UPDATE OR DELETE ON outbox.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.bump_config_version();

-- One row per (event, endpoint). States (see src/delivery.rs for the diagram):
--   pending     waiting for next_attempt_at; if held, waiting behind an earlier delivery of the
--               same resource for the same endpoint
--   delivering  claimed by a replica until lease_until
--   succeeded   a 2xx was received
--   dead        retries exhausted (max age), or an error retrying cannot fix
CREATE TABLE outbox.deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_pk        bigint      NOT NULL,  -- outbox.events.id
    -- Deleting an endpoint deletes its deliveries (their history stays in outbox.attempts).
    endpoint_id     bigint      NOT NULL REFERENCES outbox.endpoints (id) ON DELETE CASCADE,
    -- The ordering lane inside the endpoint: resource_key, or its sha256 when it is too long
    -- for an index. NULL: unordered.
    lane_key        text,
    state           text        NOT NULL DEFAULT 'pending',
    held            boolean     NOT NULL DEFAULT false,
    attempt_count   integer     NOT NULL DEFAULT 0,
    -- Incremented by every claim; a completion only applies if it still matches, so a replica
    -- whose lease expired cannot overwrite the outcome of the replica that took over.
    claim_count     integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    leased_by       text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    CONSTRAINT deliveries_state_valid CHECK (state IN ('pending', 'delivering', 'succeeded', 'dead')),
    CONSTRAINT deliveries_held_pending CHECK (NOT held OR state = 'pending')
);
-- Due work per endpoint: the claim walks the endpoints that have some (a loose index scan) and
-- takes the first rows of each. Only lane heads and unordered deliveries are in it, so its size
-- is bounded by endpoints x resources in flight, not by the backlog.
CREATE INDEX deliveries_due ON outbox.deliveries (endpoint_id, next_attempt_at)
    WHERE state = 'pending' AND NOT held;
-- The next delivery of a lane, promoted when the head succeeds or dies.
CREATE INDEX deliveries_held ON outbox.deliveries (endpoint_id, lane_key, id) WHERE held;
-- Lease rescue: deliveries whose replica died.
CREATE INDEX deliveries_leased ON outbox.deliveries (lease_until) WHERE state = 'delivering';
-- Event -> deliveries (admin look-ups, retention).
CREATE INDEX deliveries_event_pk ON outbox.deliveries (event_pk);
-- Dead deliveries for operators and retention.
CREATE INDEX deliveries_dead ON outbox.deliveries (endpoint_id, completed_at) WHERE state = 'dead';

-- Queue tables churn: vacuum them eagerly so dead index entries do not pile up.
ALTER TABLE outbox.deliveries SET (autovacuum_vacuum_scale_factor = 0.01,
                                   autovacuum_vacuum_insert_scale_factor = 0.01,
                                   fillfactor = 80);
ALTER TABLE outbox.events SET (autovacuum_vacuum_scale_factor = 0.02,
                               autovacuum_vacuum_insert_scale_factor = 0.02);

-- One row per (endpoint, lane) that has ever had ordered work; `pending` counts its deliveries
-- that are not yet succeeded or dead. Routing and completion lock this row (always in
-- (endpoint_id, lane_key) order), which is what makes "only the head is in flight" exact.
CREATE TABLE outbox.lanes (
    endpoint_id bigint      NOT NULL REFERENCES outbox.endpoints (id) ON DELETE CASCADE,
    lane_key    text        NOT NULL,
    pending     integer     NOT NULL DEFAULT 0 CHECK (pending >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, lane_key)
);
ALTER TABLE outbox.lanes SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 70);

-- One row per HTTP attempt; append-only.
CREATE TABLE outbox.attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint      NOT NULL,
    event_id         text        NOT NULL,  -- the webhook-id
    endpoint_id      bigint      NOT NULL,
    -- The delivery's claim number: each claim is one HTTP attempt. A gap means a replica died
    -- during that attempt before it could record it.
    attempt          integer     NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      integer     NOT NULL,
    status_code      integer,
    error_kind       text,
    error_message    text,
    response_excerpt text,
    next_attempt_at  timestamptz,
    replica          text,
    CONSTRAINT attempts_error_kind_valid CHECK (error_kind IS NULL OR error_kind IN (
        'timeout', 'connect', 'dns', 'tls', 'status', 'body_too_large', 'blocked_address',
        'invalid_url', 'invalid_event', 'request', 'endpoint_gone'))
);
-- Also makes recording idempotent: a batch retried after a lost commit acknowledgement
-- inserts nothing twice.
CREATE UNIQUE INDEX attempts_delivery_attempt ON outbox.attempts (delivery_id, attempt);
CREATE INDEX attempts_endpoint_started ON outbox.attempts (endpoint_id, started_at);
-- Time-ordered and append-only: a BRIN index costs almost nothing to maintain.
CREATE INDEX attempts_started_at ON outbox.attempts USING brin (started_at);
CREATE INDEX attempts_event_id ON outbox.attempts (event_id);

-- ---------------------------------------------------------------------------------------------
-- SQL API for applications and DBAs
-- ---------------------------------------------------------------------------------------------

-- Publish an event: one INSERT, in the caller's transaction. Returns the event_id.
CREATE FUNCTION outbox.publish(
    event_type   text,
    payload      jsonb,
    resource_key text DEFAULT NULL,
    tenant_id    text DEFAULT NULL,
    headers      jsonb DEFAULT NULL,
    event_id     text DEFAULT NULL
) RETURNS text
LANGUAGE sql VOLATILE AS $$
    INSERT INTO outbox.events (event_id, event_type, resource_key, tenant_id, payload, headers)
    VALUES (coalesce(publish.event_id, outbox.new_event_id()), publish.event_type,
            publish.resource_key, publish.tenant_id, publish.payload, publish.headers)
    RETURNING events.event_id
$$;

-- Create an endpoint with one subscription; returns the endpoint id.
CREATE FUNCTION outbox.add_endpoint(
    url         text,
    event_types text[] DEFAULT '{*}',
    tenant_id   text DEFAULT NULL,
    secret      text DEFAULT NULL
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
    INSERT INTO outbox.subscriptions (endpoint_id, event_types)
    VALUES (new_id, add_endpoint.event_types);
    RETURN new_id;
END
$$;

-- Start a secret rotation: the new secret (generated if not given) signs alongside the old
-- ones until outbox.finish_secret_rotation. Returns the new secret.
CREATE FUNCTION outbox.rotate_secret(endpoint_id bigint, secret text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text := coalesce(secret, outbox.new_secret());
BEGIN
    UPDATE outbox.endpoints e
       SET secrets = (ARRAY[s] || e.secrets)[1:10], updated_at = now()
     WHERE e.id = rotate_secret.endpoint_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint % does not exist', rotate_secret.endpoint_id
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN s;
END
$$;

-- End a rotation: keep only the newest secret.
CREATE FUNCTION outbox.finish_secret_rotation(endpoint_id bigint) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE outbox.endpoints e SET secrets = e.secrets[1:1], updated_at = now()
     WHERE e.id = finish_secret_rotation.endpoint_id
$$;

-- Retry dead deliveries (all of an endpoint's, or one). A retried delivery re-enters its lane
-- behind the work already there: it goes as soon as the lane's current head is done.
-- Returns how many were revived.
CREATE FUNCTION outbox.retry_dead(endpoint_id bigint, delivery_id bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    n bigint;
    idle_lanes text[];
BEGIN
    -- Lock the lanes first, in the same order the engine does.
    PERFORM 1 FROM outbox.lanes l
      WHERE l.endpoint_id = retry_dead.endpoint_id
        AND l.lane_key IN (SELECT d.lane_key FROM outbox.deliveries d
                            WHERE d.endpoint_id = retry_dead.endpoint_id AND d.state = 'dead'
                              AND (retry_dead.delivery_id IS NULL OR d.id = retry_dead.delivery_id))
      ORDER BY l.endpoint_id, l.lane_key
      FOR UPDATE;
    WITH revived AS (
        UPDATE outbox.deliveries d
           SET state = 'pending', held = d.lane_key IS NOT NULL,
               attempt_count = 0, next_attempt_at = now(), completed_at = NULL, updated_at = now()
         WHERE d.endpoint_id = retry_dead.endpoint_id AND d.state = 'dead'
           AND (retry_dead.delivery_id IS NULL OR d.id = retry_dead.delivery_id)
        RETURNING d.endpoint_id, d.lane_key
    ), per_lane AS (
        SELECT r.endpoint_id, r.lane_key, count(*)::int AS n FROM revived r
         WHERE r.lane_key IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ), bumped AS (
        INSERT INTO outbox.lanes AS l (endpoint_id, lane_key, pending)
        SELECT p.endpoint_id, p.lane_key, p.n FROM per_lane p
        ON CONFLICT (endpoint_id, lane_key)
        DO UPDATE SET pending = l.pending + excluded.pending, updated_at = now()
        RETURNING l.lane_key, l.pending
    )
    SELECT (SELECT count(*) FROM revived),
           (SELECT array_agg(b.lane_key) FROM bumped b JOIN per_lane p USING (lane_key)
             WHERE b.pending = p.n)
      INTO n, idle_lanes;
    -- Lanes that had nothing in flight: their oldest revived delivery becomes the head.
    UPDATE outbox.deliveries d SET held = false, next_attempt_at = now(), updated_at = now()
     WHERE d.id IN (SELECT (SELECT h.id FROM outbox.deliveries h
                             WHERE h.endpoint_id = retry_dead.endpoint_id AND h.lane_key = k
                               AND h.held ORDER BY h.id LIMIT 1)
                      FROM unnest(coalesce(idle_lanes, '{}')) AS k);
    RETURN n;
END
$$;
