-- The dead deliveries of one endpoint in scope ($4 tenant; null: any) whose event was
-- created in [$2, $3) (null: unbounded), oldest first: its range of
-- deliveries_endpoint_status. $1 endpoint id
SELECT d.id
  FROM outbox.deliveries d
  JOIN outbox.endpoints e ON e.id = d.endpoint_id
  JOIN outbox.events ev ON ev.id = d.event_pk
 WHERE d.endpoint_id = $1::bigint
   AND outbox.delivery_status(d.state, d.held, d.attempt_count) = 'dead'
   AND ($2::timestamptz IS NULL OR ev.created_at >= $2::timestamptz)
   AND ($3::timestamptz IS NULL OR ev.created_at < $3::timestamptz)
   AND ($4::text IS NULL OR e.tenant_id = $4::text)
 ORDER BY d.event_pk, d.id
