-- Send a test event to one endpoint only ($1, in scope: $2 tenant; null: any): an event of
-- type outboxd.test in the endpoint's tenant, marked routed (the router leaves it alone:
-- no other endpoint gets it), with one unordered delivery, due now. Counted in
-- outbox.event_types like a routed event. Returns its event_id and delivery id.
WITH ep AS (
    SELECT e.id, e.tenant_id FROM outbox.endpoints e
     WHERE e.id = $1::bigint AND ($2::text IS NULL OR e.tenant_id = $2::text)
),
ev AS (
    INSERT INTO outbox.events (event_type, tenant_id, payload, routed_at)
    SELECT 'outboxd.test', ep.tenant_id,
           jsonb_build_object('type', 'outboxd.test', 'endpoint_id', ep.id,
                              'sent_at', now(),
                              'message', 'A test event sent from the outboxd console or API.'),
           now()
      FROM ep
    RETURNING id, event_id, event_type, tenant_id
),
delivery AS (
    INSERT INTO outbox.deliveries (event_pk, endpoint_id)
    SELECT ev.id, $1::bigint FROM ev
    RETURNING id
),
counted AS (
    INSERT INTO outbox.event_types AS t (tenant_key, event_type, events, first_seen, last_seen)
    SELECT coalesce(ev.tenant_id, ''), ev.event_type, 1, now(), now() FROM ev
    ON CONFLICT (tenant_key, event_type)
    DO UPDATE SET events = t.events + 1, last_seen = excluded.last_seen
    RETURNING 1
)
SELECT ev.event_id, delivery.id AS delivery_id FROM ev, delivery
