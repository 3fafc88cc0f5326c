-- What failed in the last hour, grouped by endpoint and error kind.
SELECT endpoint_id, error_kind, status_code, count(*) AS attempts,
       max(started_at) AS last_seen, (array_agg(error_message ORDER BY started_at DESC))[1] AS last_message
  FROM outbox.recent_failures
 GROUP BY 1, 2, 3
 ORDER BY attempts DESC;
