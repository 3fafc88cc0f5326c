-- outboxd's database roles (README "Database roles"). Run it as a superuser (or a role with
-- CREATEROLE that may grant CREATE on this database), connected to outboxd's database:
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/roles.sql
--
-- Idempotent: running it again changes nothing (run it in each database outboxd uses).
-- Before or after `outboxd migrate`, either order: migrate grants what it creates to the
-- roles that exist, and this grants on what exists already.
--
--   outboxd_owner      owns the `outbox` schema; `outboxd migrate` runs as it
--   outboxd_runtime    `outboxd run`: the engine and the admin API, least privilege
--   outboxd_publisher  the application: INSERT into outbox.events, outbox.publish(); reads
--                      no payloads
--   outboxd_reader     DBAs and dashboards: the views in sql/cookbook/, no payloads or secrets
--
-- They cannot log in. Grant them to login roles, e.g.:
--
--   CREATE ROLE outboxd_migrator LOGIN PASSWORD '…' IN ROLE outboxd_owner;
--   CREATE ROLE outboxd_app      LOGIN PASSWORD '…' IN ROLE outboxd_runtime;
--   GRANT outboxd_publisher TO my_application;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['outboxd_owner', 'outboxd_runtime', 'outboxd_publisher',
                             'outboxd_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- exists already (or was created concurrently)
        END;
    END LOOP;
    -- `outboxd migrate` creates the `outbox` schema as outboxd_owner.
    EXECUTE format('GRANT CREATE ON DATABASE %I TO outboxd_owner', current_database());
    -- Migrated already: the privileges on what is there (as a superuser or the schema's
    -- owner; otherwise the next `outboxd migrate` grants them).
    IF to_regprocedure('outbox.grant_roles()') IS NULL THEN
        NULL;
    ELSIF has_function_privilege('outbox.grant_roles()', 'EXECUTE') THEN
        PERFORM outbox.grant_roles();
    ELSE
        RAISE NOTICE 'not the owner of the outbox schema: run outboxd migrate to grant the roles their privileges';
    END IF;
END
$$;
