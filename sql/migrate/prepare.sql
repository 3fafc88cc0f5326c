-- Run by `outboxd migrate` inside its transaction, after the lock and before refinery reads
-- its history (src/db/migrate.rs).
DO $$
DECLARE
    owner name;
BEGIN
    -- 1. Create and change the schema as its owner, whichever login migrates: the owner of
    --    the `outbox` schema, or for a new database outboxd_owner (sql/roles.sql) when it
    --    may create schemas here. Only when the login is a member of that role; otherwise as
    --    itself, as before.
    SELECT n.nspowner::regrole::name INTO owner FROM pg_namespace n WHERE n.nspname = 'outbox';
    IF owner IS NULL
       AND EXISTS (SELECT FROM pg_roles WHERE rolname = 'outboxd_owner')
       AND has_database_privilege('outboxd_owner', current_database(), 'CREATE') THEN
        owner := 'outboxd_owner';
    END IF;
    IF owner IS NOT NULL AND owner <> current_user AND pg_has_role(current_user, owner, 'MEMBER') THEN
        BEGIN
            PERFORM set_config('role', owner, true);
        EXCEPTION WHEN insufficient_privilege THEN
            NULL;  -- a member without the SET option (PostgreSQL 16+): stay as itself
        END;
    END IF;

    -- 2. refinery's history lives in the schema (no CREATE on `public` needed).
    IF to_regnamespace('outbox') IS NULL THEN
        CREATE SCHEMA outbox;
    END IF;

    -- 3. Databases migrated by outboxd 0.1 keep their history in public; move it, once.
    IF to_regclass('public.outboxd_schema_history') IS NOT NULL
       AND to_regclass('outbox.schema_history') IS NULL THEN
        ALTER TABLE public.outboxd_schema_history SET SCHEMA outbox;
        ALTER TABLE outbox.outboxd_schema_history RENAME TO schema_history;
        RAISE NOTICE 'moved the migration history from public.outboxd_schema_history to outbox.schema_history';
    END IF;
END
$$;
