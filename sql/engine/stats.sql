-- Database-wide gauges for /metrics (run by the holder of the stats lease only). Every term
-- reads a partial index, so the cost follows the backlog, not the table (millions of
-- succeeded rows cost nothing here). The oldest unfinished delivery is always a lane head or
-- unordered (held ones are younger than their head). Pending and dead counts come per endpoint
-- from stats_endpoints.sql.
SELECT
  coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox.events
                                        WHERE routed_at IS NULL ORDER BY id LIMIT 1)), 0)::float8
    AS outbox_lag_seconds,
  (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering') AS delivering,
  coalesce(extract(epoch FROM now() - least(
      (SELECT min(created_at) FROM outbox.deliveries WHERE state = 'pending' AND NOT held),
      (SELECT min(created_at) FROM outbox.deliveries WHERE state = 'delivering'))), 0)::float8
    AS oldest_pending_age_seconds
