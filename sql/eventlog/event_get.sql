-- One event in scope ($2 tenant; null: any), by event_id ($1): the first row published with
-- it (the one routed; later duplicates produced no deliveries). The payload comes
-- pretty-printed (jsonb_pretty, so numbers stay exactly as stored) only when its stored size
-- is at most $3 bytes; larger ones are downloaded (event_payload.sql).
SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.headers,
       ev.created_at, ev.routed_at,
       pg_column_size(ev.payload) AS payload_stored_bytes,
       CASE WHEN pg_column_size(ev.payload) <= $3::int THEN jsonb_pretty(ev.payload) END
           AS payload_pretty,
       (SELECT count(*) FROM outbox.events d WHERE d.event_id = ev.event_id) AS published
  FROM outbox.events ev
 WHERE ev.event_id = $1::text
   AND ($2::text IS NULL OR ev.tenant_id = $2::text)
 ORDER BY ev.id
 LIMIT 1
