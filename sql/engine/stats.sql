-- Gauges for /metrics: outbox lag, backlog, dead deliveries.
SELECT
  coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox.events
                                        WHERE routed_at IS NULL ORDER BY id LIMIT 1)), 0)::float8
    AS outbox_lag_seconds,
  (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending') AS pending,
  (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering') AS delivering,
  (SELECT count(*) FROM outbox.deliveries WHERE state = 'dead') AS dead,
  coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM outbox.deliveries
                                        WHERE state IN ('pending', 'delivering'))), 0)::float8
    AS oldest_pending_age_seconds
