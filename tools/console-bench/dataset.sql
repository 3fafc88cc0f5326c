-- The console benchmark's dataset: 10 M events, 25 M deliveries, attempts, on the migrated
-- schema (run by tools/console-bench/run.sh, which drops the secondary indexes first and
-- builds them afterwards, timing each). Deterministic: every choice is a function of the id.
--
--   tenants     100 ('t000'…'t099'); t000 publishes a third of everything; 'rare' 100 events
--   endpoints   1 000: 10 per tenant (ids 1…1000), an internal all-tenants one and the rare
--               tenant's; all disabled, so the sidecar running for the timings never
--               changes the data
--   events      10 000 000 over the last 6 days, in id order; 40 event types (one rare:
--               audit.rare, 1 in 100 000); resource keys order:<n> over 2 M orders (5 each),
--               and a hot key hot:1 with 100 000 events
--   deliveries  2 or 3 per event to its tenant's endpoints: 25 M. The newest 20 000 events
--               are the backlog: on 5 000 keys (4 events per lane), lane heads pending (half
--               of them retrying, 200 in flight), the rest held. Older deliveries: 0.5 %
--               dead, the rest succeeded.
--   attempts    one per finished delivery of the last 2 days, three per dead one, one per
--               retrying one (about 9 M rows)
-- :events is the number of events (psql variable, default 10000000).

\set ON_ERROR_STOP on
\if :{?events}
\else
  \set events 10000000
\endif

SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
SET work_mem = '256MB';
SET max_parallel_workers_per_gather = 0;

ALTER TABLE outbox.endpoints DISABLE TRIGGER endpoints_config_changed;
ALTER TABLE outbox.subscriptions DISABLE TRIGGER subscriptions_config_changed;
ALTER TABLE outbox.events DISABLE TRIGGER events_notify_router;

INSERT INTO outbox.endpoints (url, tenant_id, all_tenants, enabled, description, disabled_reason)
SELECT 'https://hooks.t' || lpad((i / 10)::text, 3, '0') || '.example/ep/' || i,
       't' || lpad((i / 10)::text, 3, '0'), false, false,
       'endpoint ' || i || ' of tenant t' || lpad((i / 10)::text, 3, '0'), 'benchmark dataset'
  FROM generate_series(0, 999) AS i
 ORDER BY i;
INSERT INTO outbox.endpoints (url, tenant_id, all_tenants, enabled, description, disabled_reason)
VALUES ('https://audit.example/all', NULL, true, false, 'internal: every tenant', 'benchmark dataset'),
       ('https://rare.example/ep', 'rare', false, false, 'the rare tenant', 'benchmark dataset');
INSERT INTO outbox.subscriptions (endpoint_id, event_types)
SELECT id, (CASE WHEN id % 3 = 0 THEN '{order.*}' WHEN id % 3 = 1 THEN '{*}' ELSE '{invoice.*,customer.*}' END)::text[]
  FROM outbox.endpoints;

-- Events. Tenant: 't000' for a third, else spread over t001..t099; 'rare' for 100 events.
CREATE TEMP TABLE types AS
SELECT row_number() OVER () - 1 AS n, t
  FROM unnest(ARRAY[
    'order.created','order.paid','order.packed','order.shipped','order.delivered','order.cancelled',
    'order.refunded','order.item.added','order.item.removed','order.note',
    'invoice.created','invoice.paid','invoice.voided','invoice.overdue','invoice.sent',
    'customer.created','customer.updated','customer.deleted','customer.merged','customer.login',
    'shipment.created','shipment.picked','shipment.in_transit','shipment.delivered','shipment.lost',
    'payment.authorized','payment.captured','payment.failed','payment.refunded','payment.disputed',
    'subscription.started','subscription.renewed','subscription.cancelled','subscription.paused',
    'product.created','product.updated','stock.low','stock.out','review.posted']) AS t;

INSERT INTO outbox.events (event_id, event_type, resource_key, tenant_id, payload, headers, created_at, routed_at)
SELECT 'evt_' || lpad(to_hex(g), 12, '0') || substr(md5(g::text), 1, 16),
       CASE WHEN g % 100000 = 77 THEN 'audit.rare' ELSE (SELECT t FROM types WHERE n = g % 39) END,
       CASE WHEN g > :events - 20000 THEN 'backlog:' || (g % 5000)
            WHEN g % 100 = 42 THEN 'hot:1'
            ELSE 'order:' || (g % 2000000) END,
       -- A backlog key's four events share a tenant (so they share lanes).
       CASE WHEN g > :events - 20000 THEN 't' || lpad((1 + (g % 5000) % 99)::text, 3, '0')
            WHEN g % 100000 = 5 THEN 'rare'
            WHEN g % 3 = 0 THEN 't000'
            ELSE 't' || lpad((1 + g % 99)::text, 3, '0') END,
       jsonb_build_object('id', g, 'order', g % 2000000, 'amount', (g % 100000) / 100.0,
                          'currency', 'EUR', 'customer', jsonb_build_object('id', g % 50000,
                          'email', 'customer' || (g % 50000) || '@example.com'),
                          'lines', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g % 977), 'qty', 1 + g % 5))),
       CASE WHEN g % 50 = 0 THEN jsonb_build_object('x-trace-id', md5(g::text)) END,
       now() - interval '6 days' + (g * (interval '6 days' / :events)),
       now() - interval '6 days' + (g * (interval '6 days' / :events)) + interval '50 ms'
  FROM generate_series(1, :events) AS g;

-- Deliveries: to endpoints (tenant * 10 + k) for k in {g % 10, (g + 3) % 10} and, for even
-- ids, (g + 6) % 10; the rare tenant's to its own endpoint. Backlog = newest 20 000 events.
INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, state, held, attempt_count,
                               claim_count, next_attempt_at, lease_until, leased_by,
                               last_status, last_error, created_at, updated_at, completed_at)
SELECT e.id,
       CASE WHEN e.tenant_id = 'rare' THEN 1002
            ELSE substr(e.tenant_id, 2)::int * 10 + x.slot + 1 END,
       e.resource_key,
       CASE WHEN b.backlog AND b.head AND e.id % 100 = 0 THEN 'delivering'
            WHEN b.backlog THEN 'pending'
            WHEN (e.id * 7 + x.k) % 200 = 0 THEN 'dead'
            ELSE 'succeeded' END,
       b.backlog AND NOT b.head,
       CASE WHEN b.backlog AND b.head AND e.id % 2 = 0 THEN 2 WHEN b.backlog THEN 0
            WHEN (e.id * 7 + x.k) % 200 = 0 THEN 3 ELSE 1 END,
       CASE WHEN b.backlog AND b.head AND e.id % 2 = 0 THEN 2 WHEN b.backlog THEN 0
            WHEN (e.id * 7 + x.k) % 200 = 0 THEN 3 ELSE 1 END,
       CASE WHEN b.backlog THEN now() + interval '10 minutes' ELSE e.created_at END,
       CASE WHEN b.backlog AND b.head AND e.id % 100 = 0 THEN now() + interval '1 hour' END,
       CASE WHEN b.backlog AND b.head AND e.id % 100 = 0 THEN 'bench-replica' END,
       CASE WHEN b.backlog AND b.head AND e.id % 2 = 0 THEN 503
            WHEN b.backlog THEN NULL
            WHEN (e.id * 7 + x.k) % 200 = 0 THEN 500 ELSE 200 END,
       CASE WHEN b.backlog AND b.head AND e.id % 2 = 0 THEN 'HTTP 503 Service Unavailable'
            WHEN NOT b.backlog AND (e.id * 7 + x.k) % 200 = 0
            THEN 'HTTP 500 Internal Server Error (dead: event older than the max age)' END,
       e.created_at, e.created_at + interval '1 second',
       CASE WHEN b.backlog THEN NULL ELSE e.created_at + interval '1 second' END
  FROM outbox.events e
 CROSS JOIN LATERAL (SELECT e.id > :events - 20000 AS backlog,
                            -- The first event of each backlog key (4 per key) leads its lanes.
                            e.id <= :events - 20000 + 5000 AS head) b
 CROSS JOIN LATERAL (VALUES (0, e.id % 10), (1, (e.id + 3) % 10), (2, (e.id + 6) % 10)) AS x(k, slot)
 WHERE (x.k < 2 OR e.id % 2 = 0)
   AND (e.tenant_id <> 'rare' OR x.k = 0);

-- Lanes of the backlog: one row per (endpoint, key) with its unfinished count.
INSERT INTO outbox.lanes (endpoint_id, lane_key, pending)
SELECT endpoint_id, lane_key, count(*) FROM outbox.deliveries
 WHERE state IN ('pending', 'delivering') GROUP BY 1, 2;

-- Attempts: the last 2 days' finished deliveries (one each; dead ones three), the retrying
-- lane heads (two each).
INSERT INTO outbox.attempts (delivery_id, event_id, endpoint_id, attempt, started_at,
                             duration_ms, status_code, error_kind, error_message,
                             response_excerpt, next_attempt_at, replica)
SELECT d.id, e.event_id, d.endpoint_id, a.n, d.created_at + a.n * interval '1 second',
       20 + (d.id % 200)::int,
       CASE WHEN d.state = 'succeeded' THEN 200 WHEN d.state = 'dead' THEN 500 ELSE 503 END,
       CASE WHEN d.state = 'succeeded' THEN NULL ELSE 'status' END,
       CASE WHEN d.state = 'succeeded' THEN NULL ELSE 'HTTP ' || CASE WHEN d.state = 'dead' THEN '500 Internal Server Error' ELSE '503 Service Unavailable' END END,
       CASE WHEN d.state = 'succeeded' THEN NULL ELSE '{"error": "upstream unavailable"}' END,
       CASE WHEN d.state = 'succeeded' OR (d.state = 'dead' AND a.n = d.attempt_count) THEN NULL
            ELSE d.created_at + (a.n + 1) * interval '1 second' END,
       'bench-replica'
  FROM outbox.deliveries d
  JOIN outbox.events e ON e.id = d.event_pk
 CROSS JOIN LATERAL generate_series(1, d.attempt_count) AS a(n)
 WHERE d.attempt_count > 0
   AND (d.created_at > now() - interval '2 days' OR d.state = 'dead')
   AND d.state <> 'delivering';

-- The event types seen, as the router would have counted them.
INSERT INTO outbox.event_types (tenant_key, event_type, events, first_seen, last_seen)
SELECT coalesce(tenant_id, ''), event_type, count(*), min(created_at), max(created_at)
  FROM outbox.events GROUP BY 1, 2;

ALTER TABLE outbox.endpoints ENABLE TRIGGER endpoints_config_changed;
ALTER TABLE outbox.subscriptions ENABLE TRIGGER subscriptions_config_changed;
ALTER TABLE outbox.events ENABLE TRIGGER events_notify_router;
