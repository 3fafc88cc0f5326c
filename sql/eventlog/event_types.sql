-- The event types seen in scope ($1 tenant; null: every tenant's, summed), alphabetically,
-- at most $2.
SELECT t.event_type, sum(t.events)::bigint AS events, min(t.first_seen) AS first_seen,
       max(t.last_seen) AS last_seen
  FROM outbox.event_types t
 WHERE ($1::text IS NULL OR t.tenant_key = $1::text)
 GROUP BY t.event_type
 ORDER BY t.event_type
 LIMIT $2
