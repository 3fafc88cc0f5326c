-- Views for the common DBA questions (see sql/cookbook/ for the queries that use them).

-- How far behind is outboxd? Routing lag (oldest unrouted event) and delivery backlog.
CREATE VIEW outbox.lag AS
SELECT
    (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL) AS unrouted_events,
    (SELECT now() - min(created_at) FROM outbox.events WHERE routed_at IS NULL) AS routing_lag,
    (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending') AS pending_deliveries,
    (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending' AND held) AS held_deliveries,
    (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering') AS delivering,
    (SELECT now() - min(created_at) FROM outbox.deliveries
      WHERE state IN ('pending', 'delivering')) AS oldest_unfinished_delivery_age;

-- Per endpoint: backlog, dead deliveries and the last hour's attempts.
CREATE VIEW outbox.endpoint_health AS
SELECT e.id AS endpoint_id, e.url, e.tenant_id, e.enabled, e.disabled_reason,
       coalesce(d.pending, 0) AS pending,
       coalesce(d.delivering, 0) AS delivering,
       coalesce(d.dead, 0) AS dead,
       d.oldest_pending,
       coalesce(a.attempts_1h, 0) AS attempts_1h,
       coalesce(a.failures_1h, 0) AS failures_1h,
       a.p95_ms_1h,
       a.last_attempt_at,
       a.last_error_kind
  FROM outbox.endpoints e
  LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
               count(*) FILTER (WHERE state = 'delivering') AS delivering,
               count(*) FILTER (WHERE state = 'dead') AS dead,
               min(created_at) FILTER (WHERE state IN ('pending', 'delivering')) AS oldest_pending
          FROM outbox.deliveries WHERE endpoint_id = e.id AND state <> 'succeeded') d ON true
  LEFT JOIN LATERAL (
        SELECT count(*) AS attempts_1h,
               count(*) FILTER (WHERE error_kind IS NOT NULL) AS failures_1h,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms_1h,
               max(started_at) AS last_attempt_at,
               (array_agg(error_kind ORDER BY started_at DESC))[1] AS last_error_kind
          FROM outbox.attempts
         WHERE endpoint_id = e.id AND started_at > now() - interval '1 hour') a ON true;

-- Failed attempts of the last hour, newest first.
CREATE VIEW outbox.recent_failures AS
SELECT a.started_at, a.endpoint_id, a.delivery_id, a.event_id, a.attempt, a.status_code,
       a.error_kind, a.error_message, a.next_attempt_at, a.response_excerpt
  FROM outbox.attempts a
 WHERE a.started_at > now() - interval '1 hour' AND a.error_kind IS NOT NULL
 ORDER BY a.started_at DESC;

-- Dead deliveries with their event and last error.
CREATE VIEW outbox.dead_deliveries AS
SELECT d.id AS delivery_id, d.endpoint_id, e.event_id, e.event_type, e.resource_key,
       e.tenant_id, d.attempt_count, d.last_status, d.last_error, d.completed_at AS died_at,
       e.created_at AS event_created_at
  FROM outbox.deliveries d
  JOIN outbox.events e ON e.id = d.event_pk
 WHERE d.state = 'dead';
