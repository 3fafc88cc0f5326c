-- The deliveries of a page of events ($1: events.id list), each with the error kind of its
-- latest attempt, to endpoints in scope ($2 tenant; null: all). deliveries_event_pk, then one
-- probe of attempts_delivery_attempt per delivery.
SELECT d.event_pk, d.id, d.endpoint_id,
       outbox.delivery_status(d.state, d.held, d.attempt_count) AS status,
       d.attempt_count, d.last_status,
       (SELECT a.error_kind FROM outbox.attempts a
         WHERE a.delivery_id = d.id ORDER BY a.attempt DESC LIMIT 1) AS last_error_kind
  FROM outbox.deliveries d
  JOIN outbox.endpoints e ON e.id = d.endpoint_id
 WHERE d.event_pk = ANY($1::bigint[])
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
 ORDER BY d.event_pk DESC, d.endpoint_id, d.id
