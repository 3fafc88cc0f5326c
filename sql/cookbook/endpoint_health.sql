-- Which endpoints are unhealthy? Backlog, dead deliveries, last hour's failures and p95.
SELECT endpoint_id, url, enabled, pending, dead, failures_1h, attempts_1h, p95_ms_1h,
       last_error_kind, disabled_reason
  FROM outbox.endpoint_health
 ORDER BY failures_1h DESC, pending DESC;
