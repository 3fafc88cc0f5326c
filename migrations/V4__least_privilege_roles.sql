-- Least-privilege roles (issue 14; sql/roles.sql creates them, README "Database roles").
--
-- 1. Publishers need INSERT on outbox.events, and no SELECT: the statement trigger's look at
--    the routing backlog used to run with the publisher's privileges, so every publisher had
--    to be able to read every tenant's payloads. It now asks a SECURITY DEFINER helper that
--    answers one boolean, with a fixed search_path (so nobody's objects can stand in for
--    the ones it names).

CREATE FUNCTION outbox.router_busy() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- Unrouted events of other transactions are visible: the router has a backlog and
    -- polls by itself, no NOTIFY needed.
    SELECT EXISTS (SELECT 1 FROM outbox.events e
                    WHERE e.routed_at IS NULL AND e.xmin <> pg_current_xact_id()::xid)
$$;

CREATE OR REPLACE FUNCTION outbox.notify_router() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('outboxd.notified', true) IS DISTINCT FROM 'on'
       AND NOT outbox.router_busy()
    THEN
        PERFORM pg_notify('outboxd_events', '');
        PERFORM set_config('outboxd.notified', 'on', true);
    END IF;
    RETURN NULL;
END
$$;

-- 2. The privileges of each role, granted to the roles that exist. Run by `outboxd migrate`
--    after every migration run (sql/engine/migrate_grant.sql) and by sql/roles.sql, so the
--    order of the two does not matter. A later migration that adds objects replaces this
--    function with one that grants on them too. What `outboxd run` needs is also listed in
--    sql/engine/missing_privileges.sql, checked at start-up; a test keeps the two in step.
CREATE FUNCTION outbox.grant_roles() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_runtime') THEN
        -- `outboxd run`: the engine and the admin API.
        GRANT USAGE ON SCHEMA outbox TO outboxd_runtime;
        GRANT SELECT ON outbox.schema_history TO outboxd_runtime;
        GRANT SELECT, UPDATE, DELETE ON outbox.events TO outboxd_runtime;
        GRANT SELECT, INSERT, UPDATE, DELETE
           ON outbox.endpoints, outbox.subscriptions, outbox.deliveries, outbox.lanes
           TO outboxd_runtime;
        -- Changing endpoints or subscriptions bumps the configuration version (trigger).
        GRANT SELECT, UPDATE ON outbox.config_version TO outboxd_runtime;
        GRANT SELECT, INSERT, DELETE ON outbox.attempts TO outboxd_runtime;
        GRANT EXECUTE ON FUNCTION outbox.new_secret(), outbox.rotate_secret(bigint, text),
              outbox.finish_secret_rotation(bigint), outbox.retry_dead(bigint, bigint)
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
              outbox.lanes, outbox.schema_history
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
