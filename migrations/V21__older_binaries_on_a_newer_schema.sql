-- Which outboxd binaries may run on this schema. A rolling upgrade migrates first (the chart's
-- pre-upgrade Job) and then replaces the replicas one by one, so for a while old replicas run
-- on the new schema; a Helm rollback does the same the other way round. By house rule every
-- migration keeps the binary before it working (the live-upgrade soak, tools/chaos
-- --upgrade-from, checks it under load), yet up to V20 an old replica's /readyz answered 503
-- "schema newer than this outboxd knows" the moment a migration committed, while it went on
-- delivering: the Service lost every endpoint (inbound listener, admin API, console) until
-- the new pods were ready, and an old pod restarted mid-rollout refused to start
-- (RELIABILITY.md §4).
--
-- A binary that knows migrations up to K, on a schema at N > K, now reads this row: when
-- K >= oldest_binary it runs and is ready (it logs a warning, /readyz says so, and
-- outboxd_schema_version{of="database"} > {of="binary"} shows it until the rollout is done);
-- otherwise it is not ready and refuses to start ("upgrade outboxd"). A migration that
-- breaks older binaries (drops or renames what they read or write, changes what a state
-- means) sets oldest_binary to its own version; every other migration leaves it alone.
--
-- 19: binaries that know V19 ran on V20 in the live-upgrade soak (lost 0, order 0), and
-- this migration only adds what they never read. Binaries before V21 do not read this table:
-- they still report not ready on a newer schema; it helps from the next upgrade on.
CREATE TABLE outbox.schema_compatibility (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    oldest_binary integer NOT NULL CHECK (oldest_binary > 0)
);
COMMENT ON TABLE outbox.schema_compatibility IS
    'One row: binaries that know migration oldest_binary or a later one may run on this schema '
    '(a migration that breaks older binaries raises it to its own version).';
INSERT INTO outbox.schema_compatibility (oldest_binary) VALUES (19);

INSERT INTO outbox.role_grants (role, privilege, object_kind, object_name, added_by)
VALUES ('outboxd_runtime', 'SELECT', 'table', 'outbox.schema_compatibility', 21),
       ('outboxd_reader', 'SELECT', 'table', 'outbox.schema_compatibility', 21);
