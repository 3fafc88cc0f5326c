-- Not a query: the filters every event search applies to `ev` (an outbox.events row), put in
-- place of /*filter*/ in each search_*.sql (crate::sql::eventlog::search). Whichever index
-- drives a search, these decide what it returns. A null parameter switches its filter off;
-- each search is planned with its own values, so a switched-off filter is gone from the plan.
-- $1 before this events.id (keyset), $3 scope: the tenant whose view this is (null: the
-- operator's), $4 event_id, $5 resource_key, $6 event types, $7 tenant, $8 endpoint id,
-- $9 delivery status (outbox.delivery_status), $10 created at or after, $11 created before,
-- $12 the lowest events.id the time range can reach, $13 whether the endpoint and status
-- filters must be checked here (false when the driver's own index already did).
    ev.id < $1::bigint
AND ($3::text IS NULL OR ev.tenant_id = $3::text)
AND ($4::text IS NULL OR ev.event_id = $4::text)
AND ($5::text IS NULL OR (left(ev.resource_key, 200) = left($5::text, 200)
                          AND ev.resource_key = $5::text))
AND ($6::text[] IS NULL OR ev.event_type = ANY($6::text[]))
AND ($7::text IS NULL OR ev.tenant_id = $7::text)
AND ($10::timestamptz IS NULL OR ev.created_at >= $10::timestamptz)
AND ($11::timestamptz IS NULL OR ev.created_at < $11::timestamptz)
AND ($12::bigint IS NULL OR ev.id >= $12::bigint)
AND (NOT $13::boolean OR ($8::bigint IS NULL AND $9::text IS NULL) OR EXISTS (
        SELECT 1 FROM outbox.deliveries fd JOIN outbox.endpoints fe ON fe.id = fd.endpoint_id
         WHERE fd.event_pk = ev.id
           AND ($8::bigint IS NULL OR fd.endpoint_id = $8::bigint)
           AND ($9::text IS NULL
                OR outbox.delivery_status(fd.state, fd.held, fd.attempt_count) = $9::text)
           AND ($3::text IS NULL OR fe.tenant_id = $3::text)))
