-- Count a routed batch into outbox.event_types, in the routing transaction (one router runs
-- at a time, so these rows are never contended). Rows in key order.
-- A type registered before it was seen (V14's catalog) has a row with events = 0, whose
-- first_seen becomes the first routed event's time.
-- $1 tenant keys ('' for events without a tenant), $2 event types, $3 events of each
INSERT INTO outbox.event_types AS t (tenant_key, event_type, events, first_seen, last_seen)
SELECT u.tenant_key, u.event_type, u.n, now(), now()
  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(tenant_key, event_type, n)
 ORDER BY u.tenant_key, u.event_type
ON CONFLICT (tenant_key, event_type)
DO UPDATE SET events = t.events + excluded.events, last_seen = excluded.last_seen,
              first_seen = CASE WHEN t.events = 0 THEN excluded.first_seen ELSE t.first_seen END
