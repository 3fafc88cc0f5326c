-- The subscriptions of one endpoint in scope ($1 endpoint id, $2 tenant; null: any).
SELECT s.id, s.endpoint_id, s.event_types, s.active, s.created_at, s.updated_at
  FROM outbox.subscriptions s
  JOIN outbox.endpoints e ON e.id = s.endpoint_id
 WHERE s.endpoint_id = $1::bigint
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
 ORDER BY s.id
