-- Endpoints in scope ($3 tenant; null: all) with their health: one endpoint ($4), or a page in
-- id order (after $1, $2 rows). Counts stop at $5 (a backlog of millions costs the same as
-- one of $5); the last hour's attempts come from attempts_endpoint_started.
SELECT e.id, e.url, e.tenant_id, e.all_tenants, e.enabled, e.disabled_reason, e.description,
       e.max_in_flight, e.client_certificate,
       (SELECT count(*) FROM (
            SELECT 1 FROM outbox.deliveries d
             WHERE d.endpoint_id = e.id
               AND outbox.delivery_status(d.state, d.held, d.attempt_count) = 'delivering'
             LIMIT $5) x) AS in_flight,
       -- Pending: lane heads and unordered ones (deliveries_due), then held ones
       -- (deliveries_held); dead: deliveries_dead. Partial indexes whose columns and
       -- predicates hold all the query reads: index-only scans, no heap.
       least((SELECT count(*) FROM (
                  SELECT 1 FROM outbox.deliveries d
                   WHERE d.endpoint_id = e.id AND d.state = 'pending' AND NOT d.held
                   LIMIT $5) x)
             + (SELECT count(*) FROM (
                  SELECT 1 FROM outbox.deliveries d
                   WHERE d.endpoint_id = e.id AND d.held
                   LIMIT $5) x), $5) AS pending,
       (SELECT count(*) FROM (
            SELECT 1 FROM outbox.deliveries d
             WHERE d.endpoint_id = e.id AND d.state = 'dead'
             LIMIT $5) x) AS dead,
       (SELECT ev.created_at FROM outbox.events ev
         WHERE ev.id = (SELECT min(p.event_pk)
                          FROM unnest(ARRAY['pending', 'held', 'retrying', 'delivering']) AS s(status)
                         CROSS JOIN LATERAL (
                                SELECT d.event_pk FROM outbox.deliveries d
                                 WHERE d.endpoint_id = e.id
                                   AND outbox.delivery_status(d.state, d.held, d.attempt_count)
                                       = s.status
                                 ORDER BY d.event_pk
                                 LIMIT 1) p))
           AS oldest_pending_at,
       h.attempts_last_hour, h.failures_last_hour, le.started_at AS last_error_at,
       le.error_kind AS last_error_kind, left(le.error_message, 500) AS last_error_message,
       coalesce((SELECT array_agg(DISTINCT p ORDER BY p)
                   FROM outbox.subscriptions s, unnest(s.event_types) AS p
                  WHERE s.endpoint_id = e.id AND s.active), '{}') AS event_types
  FROM outbox.endpoints e
 CROSS JOIN LATERAL (
        SELECT count(*) AS attempts_last_hour,
               count(*) FILTER (WHERE a.error_kind IS NOT NULL) AS failures_last_hour
          FROM outbox.attempts a
         WHERE a.endpoint_id = e.id AND a.started_at > now() - interval '1 hour') h
  LEFT JOIN LATERAL (
        SELECT a.started_at, a.error_kind, a.error_message
          FROM outbox.attempts a
         WHERE a.endpoint_id = e.id AND a.started_at > now() - interval '1 hour'
           AND a.error_kind IS NOT NULL
         ORDER BY a.started_at DESC
         LIMIT 1) le ON true
 WHERE ($4::bigint IS NULL OR e.id = $4::bigint)
   AND e.id > $1::bigint
   AND ($3::text IS NULL OR e.tenant_id = $3::text)
 ORDER BY e.id
 LIMIT $2
