-- The payload of one event in scope ($2 tenant; null: any), by event_id ($1), as the JSON
-- text sent to receivers.
SELECT ev.payload::text AS payload
  FROM outbox.events ev
 WHERE ev.event_id = $1::text
   AND ($2::text IS NULL OR ev.tenant_id = $2::text)
 ORDER BY ev.id
 LIMIT 1
