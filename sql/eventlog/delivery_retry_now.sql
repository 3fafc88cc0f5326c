-- Make a pending delivery due now (in scope: $2 tenant; null: any). Only a lane head or an
-- unordered one: a held delivery waits for its head whatever its due time. Returns its id
-- when it applied. $1 delivery id
UPDATE outbox.deliveries d
   SET next_attempt_at = now(), updated_at = now()
  FROM outbox.endpoints e
 WHERE d.id = $1::bigint AND e.id = d.endpoint_id
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
   AND d.state = 'pending' AND NOT d.held
RETURNING d.id
