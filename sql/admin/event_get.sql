-- The first event published with this event_id (the one that was routed; later duplicates
-- produce no deliveries), without its payload. $1 event_id
SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.headers,
       ev.created_at, ev.routed_at,
       (SELECT count(*) FROM outbox.events d WHERE d.event_id = ev.event_id) AS published
  FROM outbox.events ev
 WHERE ev.event_id = $1
 ORDER BY ev.id
 LIMIT 1
