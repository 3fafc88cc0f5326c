-- ---------------------------------------------------------------------------------------------
-- 1. One configuration bump per transaction.
--
-- Every statement on outbox.endpoints and outbox.subscriptions bumped outbox.config_version
-- (V1's statement trigger). Its one row was updated once per statement, so N calls of
-- outbox.add_endpoint (two statements each) in one transaction updated the same row 2N
-- times; each update walks the chain of the row's versions this transaction left behind,
-- and N calls cost O(N²): 20 000 calls over psql took 52-62 s, 14-17 s with one bump.
--
-- Replicas only compare the version with the one they loaded (src/catalog.rs) and reload
-- the catalog when it moved; nothing counts the bumps. So the first configuration statement
-- of a transaction bumps and notifies, and the others see, in a transaction-local setting
-- keyed on the transaction's id, that it is done. The setting rolls back with a savepoint
-- (as does the bump), so a statement after a rolled-back one bumps again. The row lock the
-- bump takes is held until commit, as before, so two transactions still commit different
-- versions. outbox.register_event_type and unregister_event_type (V14) keep their own
-- unconditional bump: one per call, and they are called one at a time.
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION outbox.bump_config_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('outboxd.config_bumped_in', true)
       IS DISTINCT FROM pg_current_xact_id()::text
    THEN
        UPDATE outbox.config_version SET version = version + 1;
        PERFORM pg_notify('outboxd_config', '');
        PERFORM set_config('outboxd.config_bumped_in', pg_current_xact_id()::text, true);
    END IF;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- 2. The roles' privileges as rows (sql/roles.sql, migration V4).
--
-- Until V17 each migration that added an object replaced outbox.grant_roles() with a copy
-- of the whole previous body plus its new GRANTs, and added the runtime's to
-- sql/engine/missing_privileges.sql by hand. From now on a migration INSERTs rows here:
-- outbox.grant_roles() grants every row whose role exists (after every migration run and from
-- sql/roles.sql), and missing_privileges.sql checks the outboxd_runtime rows, so the two
-- cannot drift apart. A migration that drops or renames an object deletes or updates its
-- rows (grant_roles() fails on a row naming an object that is not there).
--
-- For a new table that `outboxd run` reads and writes, a migration adds:
--
--   INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, added_by)
--   VALUES ('outboxd_runtime', 'SELECT', 'table', 'outbox.new_table', <its version>),
--          ('outboxd_runtime', 'INSERT', 'table', 'outbox.new_table', <its version>);
--
-- The rows below are exactly what V17's grant_roles() granted (a test compares the two).
-- ---------------------------------------------------------------------------------------------

CREATE TABLE outbox.role_grants (
    -- One of sql/roles.sql's roles (outboxd_owner owns everything and needs no grant).
    role        text NOT NULL,
    privilege   text NOT NULL,
    object_kind text NOT NULL,
    -- Schema-qualified: 'outbox', 'outbox.events', 'outbox.retry_dead(bigint, bigint)' (a
    -- function with its argument types, as regprocedure reads it).
    object_name text NOT NULL,
    -- A column privilege on these columns only; NULL: on the whole object.
    columns     text[],
    -- The migration that inserted the row (V18 moved in what V4 to V17 granted).
    added_by    integer NOT NULL,
    PRIMARY KEY (role, object_kind, object_name, privilege),
    CONSTRAINT role_grants_role_known
        CHECK (role IN ('outboxd_runtime', 'outboxd_publisher', 'outboxd_reader')),
    CONSTRAINT role_grants_privilege_fits_kind CHECK (CASE object_kind
        WHEN 'schema' THEN privilege = 'USAGE'
        WHEN 'table' THEN privilege IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
        WHEN 'sequence' THEN privilege IN ('USAGE', 'SELECT', 'UPDATE')
        WHEN 'function' THEN privilege = 'EXECUTE'
        ELSE false END),
    CONSTRAINT role_grants_columns_on_tables
        CHECK (columns IS NULL OR (object_kind = 'table' AND cardinality(columns) > 0))
);

COMMENT ON TABLE outbox.role_grants IS
    'What outbox.grant_roles() grants to the outboxd_* roles (sql/roles.sql); migrations insert rows. The outboxd_runtime rows are what outboxd run checks at start-up.';

-- Not a secret (the migrations say the same), and `outboxd run` reads it to check its role's
-- privileges whatever role it runs as (sql/engine/missing_privileges.sql).
GRANT SELECT ON outbox.role_grants TO PUBLIC;

-- `outboxd run`: the engine and the admin API.
INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, added_by)
SELECT 'outboxd_runtime', p, k, o, 18
  FROM (VALUES
    ('schema', 'outbox', '{USAGE}'::text[]),
    ('table', 'outbox.schema_history', '{SELECT}'),
    -- INSERT: test events (sql/eventlog/endpoint_test_event.sql) and inbound requests
    -- relayed as events (V11).
    ('table', 'outbox.events', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('table', 'outbox.endpoints', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('table', 'outbox.subscriptions', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('table', 'outbox.deliveries', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('table', 'outbox.lanes', '{SELECT,INSERT,UPDATE,DELETE}'),
    -- Changing endpoints or subscriptions bumps the configuration version (trigger).
    ('table', 'outbox.config_version', '{SELECT,UPDATE}'),
    ('table', 'outbox.attempts', '{SELECT,INSERT,DELETE}'),
    -- The stats lease (sql/engine/stats_lease.sql, stats_release.sql).
    ('table', 'outbox.leaders', '{SELECT,INSERT,UPDATE,DELETE}'),
    -- The event types seen (the router counts them, the event log reads them) and the
    -- catalog (V14: /v1/event-types registers and removes types).
    ('table', 'outbox.event_types', '{SELECT,INSERT,UPDATE,DELETE}'),
    -- Routing records filter errors (retention deletes them).
    ('table', 'outbox.filter_errors', '{SELECT,INSERT,DELETE}'),
    ('function', 'outbox.check_filter(text)', '{EXECUTE}'),
    ('function', 'outbox.filter_vars(text, text, text, jsonb)', '{EXECUTE}'),
    ('function', 'outbox.filter_match_safe(jsonb, jsonpath, jsonb)', '{EXECUTE}'),
    ('function', 'outbox.filter_error_message(jsonb, jsonpath, jsonb)', '{EXECUTE}'),
    ('function', 'outbox.check_retry_schedule(text)', '{EXECUTE}'),
    ('function', 'outbox.new_secret()', '{EXECUTE}'),
    ('function', 'outbox.rotate_secret(bigint, text)', '{EXECUTE}'),
    ('function', 'outbox.finish_secret_rotation(bigint)', '{EXECUTE}'),
    ('function', 'outbox.retry_dead(bigint, bigint)', '{EXECUTE}'),
    ('function', 'outbox.requeue(bigint[], text)', '{EXECUTE}'),
    ('function', 'outbox.delivery_status(text, boolean, integer)', '{EXECUTE}'),
    -- Inbound webhooks (V11): sources (/v1/sources), stored requests (the listener stores,
    -- the worker reads bodies, retention deletes; UPDATE for its row locks), their ids,
    -- replay, and event ids of the events that relay them.
    ('table', 'outbox.sources', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('table', 'outbox.inbound_requests', '{SELECT,INSERT,UPDATE,DELETE}'),
    ('sequence', 'outbox.inbound_requests_id_seq', '{USAGE}'),
    ('function', 'outbox.new_event_id()', '{EXECUTE}'),
    ('function', 'outbox.replay_source(text, timestamptz, timestamptz)', '{EXECUTE}'),
    -- Filters on inbound events (V14): routing reads the stored request for them.
    ('function', 'outbox.inbound_payload(bigint)', '{EXECUTE}'),
    ('function', 'outbox.inbound_headers(bigint)', '{EXECUTE}'),
    -- The event-type catalog (V14).
    ('function', 'outbox.register_event_type(text, text, jsonb, jsonb, boolean)', '{EXECUTE}'),
    ('function', 'outbox.unregister_event_type(text)', '{EXECUTE}'),
    -- The tenant portal (V15): the link key, written at start-up.
    ('function', 'outbox.set_portal_key(bytea, text)', '{EXECUTE}')
  ) AS g(k, o, ps), unnest(g.ps) AS p;

-- The application: INSERT, or outbox.publish(). `id` and `event_id` only, so that
-- INSERT … RETURNING and outbox.publish() can return them; never the payloads.
INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, columns, added_by)
VALUES
    ('outboxd_publisher', 'USAGE', 'schema', 'outbox', NULL, 18),
    ('outboxd_publisher', 'INSERT', 'table', 'outbox.events', NULL, 18),
    ('outboxd_publisher', 'SELECT', 'table', 'outbox.events', '{id,event_id}', 18),
    ('outboxd_publisher', 'EXECUTE', 'function',
     'outbox.publish(text, jsonb, text, text, jsonb, text)', NULL, 18),
    ('outboxd_publisher', 'EXECUTE', 'function', 'outbox.new_event_id()', NULL, 18),
    ('outboxd_publisher', 'EXECUTE', 'function', 'outbox.router_busy()', NULL, 18),
    -- The tenant portal (V15): links for its customers.
    ('outboxd_publisher', 'EXECUTE', 'function', 'outbox.portal_link(text, interval, boolean)',
     NULL, 18);

-- DBAs and dashboards: the views and the cookbook's read queries, never payloads, event or
-- endpoint headers, or secrets.
INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, columns, added_by)
SELECT 'outboxd_reader', 'SELECT', 'table', o, NULL, 18
  FROM unnest(ARRAY['outbox.lag', 'outbox.endpoint_health', 'outbox.recent_failures',
                    'outbox.dead_deliveries', 'outbox.deliveries', 'outbox.attempts',
                    'outbox.subscriptions', 'outbox.lanes', 'outbox.schema_history',
                    'outbox.leaders', 'outbox.event_types']) AS o;
INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, columns, added_by)
VALUES
    ('outboxd_reader', 'USAGE', 'schema', 'outbox', NULL, 18),
    ('outboxd_reader', 'EXECUTE', 'function', 'outbox.delivery_status(text, boolean, integer)',
     NULL, 18),
    -- Filter errors without PostgreSQL's message, which can quote a payload value.
    ('outboxd_reader', 'SELECT', 'table', 'outbox.filter_errors',
     '{id,created_at,subscription_id,endpoint_id,event_id,event_type,filter}', 18),
    ('outboxd_reader', 'SELECT', 'table', 'outbox.events',
     '{id,event_id,event_type,resource_key,tenant_id,created_at,routed_at,request_id}', 18),
    -- Inbound (V11): sources without their secrets, stored requests without their headers,
    -- query string or body (any of them may carry a provider's credentials).
    ('outboxd_reader', 'SELECT', 'table', 'outbox.sources',
     '{id,name,verify,signature_header,tolerance_seconds,ordering_key,idempotency_key,'
     'event_type,tenant_id,max_body_bytes,rate_limit,get_challenge,enabled,description,'
     'created_at,updated_at}', 18),
    ('outboxd_reader', 'SELECT', 'table', 'outbox.inbound_requests',
     '{id,source,received_at,method,path,content_type,idempotency_key,event_type,'
     'resource_key,tenant_id,peer}', 18),
    -- Endpoints without secrets or headers; client_certificate (V17) is a name of files
    -- outboxd reads, not a secret.
    ('outboxd_reader', 'SELECT', 'table', 'outbox.endpoints',
     '{id,url,tenant_id,all_tenants,enabled,max_in_flight,rate_limit,description,'
     'disabled_reason,created_at,updated_at,retry_schedule,max_age,client_certificate}', 18);

-- Grants every row whose role exists. Names go through regclass / regprocedure / quote_ident,
-- so a row cannot smuggle SQL in, and one naming a missing object fails the migration run.
CREATE OR REPLACE FUNCTION outbox.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    g outbox.role_grants;
BEGIN
    FOR g IN
        SELECT r.* FROM outbox.role_grants r
         WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = r.role)
         ORDER BY r.role, r.object_kind, r.object_name, r.privilege
    LOOP
        EXECUTE format('GRANT %s%s ON %s %s TO %I',
            g.privilege,
            (SELECT ' (' || string_agg(quote_ident(c), ', ') || ')' FROM unnest(g.columns) c),
            upper(g.object_kind),
            CASE g.object_kind
                WHEN 'schema' THEN quote_ident(g.object_name)
                WHEN 'function' THEN g.object_name::regprocedure::text
                ELSE g.object_name::regclass::text
            END,
            g.role);
    END LOOP;
END
$$;
