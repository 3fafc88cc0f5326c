-- Send a test event to one endpoint only ($1, in scope: $2 tenant; null: any): an event of
-- type outboxd.test in the endpoint's tenant, marked routed (the router leaves it alone:
-- no other endpoint gets it), with one unordered delivery, due now. Counted in
-- outbox.event_types like a routed event. Its payload: the catalog's example of event type
-- $3 when that type is registered with one (what the receiver will get for such events);
-- otherwise a generic payload naming $3 (if given). Returns its event_id, delivery id and
-- the type whose example was sent (null: the generic payload).
WITH ep AS (
    SELECT e.id, e.tenant_id FROM outbox.endpoints e
     WHERE e.id = $1::bigint AND ($2::text IS NULL OR e.tenant_id = $2::text)
),
example AS (
    SELECT t.event_type, t.example FROM outbox.event_types t
     WHERE t.tenant_key = '' AND t.event_type = $3::text
       AND t.registered_at IS NOT NULL AND t.example IS NOT NULL
),
ev AS (
    INSERT INTO outbox.events (event_type, tenant_id, payload, routed_at)
    SELECT 'outboxd.test', ep.tenant_id,
           coalesce((SELECT x.example FROM example x),
                    jsonb_build_object('type', 'outboxd.test', 'endpoint_id', ep.id,
                                       'sent_at', now(),
                                       'message', 'A test event sent from the outboxd console or API.')
                    || CASE WHEN $3::text IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('event_type', $3::text) END),
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
SELECT ev.event_id, delivery.id AS delivery_id,
       (SELECT x.event_type FROM example x) AS example_of
  FROM ev, delivery
