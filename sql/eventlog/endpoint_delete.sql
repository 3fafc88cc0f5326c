-- Delete one endpoint in scope ($2 tenant; null: any); its subscriptions, deliveries and lanes
-- go with it (ON DELETE CASCADE), its attempts stay. The caller holds the router's lock.
-- Returns its id when it existed in scope. $1 endpoint id
DELETE FROM outbox.endpoints e
 WHERE e.id = $1::bigint
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
RETURNING e.id
