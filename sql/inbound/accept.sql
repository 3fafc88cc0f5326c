-- Store a batch of accepted inbound requests and their events: one statement, so one
-- transaction and one WAL flush for the whole batch (the group commit of src/inbound/writer.rs).
-- Ids are drawn in arrival order first, so requests and their events keep it; a request whose
-- (source, idempotency_key) is already stored (a provider's retry, or a duplicate within the
-- batch) inserts nothing, and gets no event. One row per input, in input order:
-- the request id (drawn even when nothing was stored) and whether it was stored.
-- synchronous_commit is forced on for this transaction: the listener acknowledges a request
-- to the provider only after this statement returns, so the commit must be on disk.
-- outboxd.notified is set so that the events' trigger (outbox.notify_router) sends no NOTIFY:
-- a transaction that notifies holds PostgreSQL's database-wide notify lock from just before its
-- commit until the commit is flushed, so concurrent batches' commits would wait for each other's
-- fsync one by one. The writer wakes the router after the commit instead (wake_router.sql).
-- $1 source, $2 method, $3 path, $4 query, $5 headers (JSON text), $6 content_type, $7 body,
-- $8 idempotency_key, $9 event_type, $10 resource_key, $11 tenant_id, $12 peer (all arrays)
WITH durable AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'on', true) AS setting,
           set_config('outboxd.notified', 'on', true) AS quiet
),
input AS MATERIALIZED (
    SELECT nextval('outbox.inbound_requests_id_seq') AS id, u.*
      FROM durable,
           unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                  $7::bytea[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
           WITH ORDINALITY AS u(source, method, path, query, headers, content_type, body,
                                idempotency_key, event_type, resource_key, tenant_id, peer, ord)
     ORDER BY u.ord
),
stored AS (
    INSERT INTO outbox.inbound_requests (id, source, method, path, query, headers, content_type,
                                         body, idempotency_key, event_type, resource_key,
                                         tenant_id, peer)
    SELECT i.id, i.source, i.method, i.path, i.query, i.headers::jsonb, i.content_type, i.body,
           i.idempotency_key, i.event_type, i.resource_key, i.tenant_id, i.peer::inet
      FROM input i
     ORDER BY i.id
    ON CONFLICT (source, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
),
relayed AS (
    INSERT INTO outbox.events (event_type, resource_key, tenant_id, request_id)
    SELECT i.event_type, i.resource_key, i.tenant_id, i.id
      FROM input i JOIN stored s ON s.id = i.id
     ORDER BY i.id
    RETURNING request_id
)
SELECT i.id, (s.id IS NOT NULL) AS stored
  FROM input i LEFT JOIN stored s ON s.id = i.id
 ORDER BY i.ord
