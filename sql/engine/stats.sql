-- Database-wide gauges for /metrics (run by the holder of the stats lease only). Every term
-- is one probe of, or a walk over, a partial index (events_unrouted, the 'delivering' range
-- of deliveries_status, deliveries_pending_created of V19), so millions of succeeded rows cost nothing here and
-- neither does a large backlog. The oldest unfinished delivery is always a lane head or
-- unordered (held ones are younger than their head). Pending and dead counts come per endpoint
-- from stats_endpoints.sql.
SELECT
  coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox.events
                                        WHERE routed_at IS NULL ORDER BY id LIMIT 1)), 0)::float8
    AS outbox_lag_seconds,
  (SELECT count(*) FROM outbox.deliveries
    WHERE outbox.delivery_status(state, held, attempt_count) = 'delivering'
      AND state = 'delivering') AS delivering,
  coalesce(extract(epoch FROM now() - least(
      (SELECT created_at FROM outbox.deliveries WHERE state = 'pending' AND NOT held
        ORDER BY created_at LIMIT 1),
      (SELECT min(created_at) FROM outbox.deliveries
        WHERE outbox.delivery_status(state, held, attempt_count) = 'delivering'
          AND state = 'delivering'))), 0)::float8
    AS oldest_pending_age_seconds
