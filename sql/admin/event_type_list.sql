-- The event-type catalog with the counts of the types seen (outbox.event_types, V9 + V14):
-- registered types (their documentation) and types only seen in the outbox, by name, after
-- $1 (cursor; '' from the start), at most $4. $2: counts of this tenant only (null: every
-- tenant's summed); $3: only registered (true), only unregistered (false), both (null).
-- $5: only this name (null: all). One pass over the table, which has a row per (tenant,
-- type) seen: small next to the events.
SELECT t.event_type AS name,
       bool_or(t.registered_at IS NOT NULL) AS registered,
       max(t.registered_at) AS registered_at,
       max(t.description) AS description,
       (array_agg(t.schema) FILTER (WHERE t.registered_at IS NOT NULL))[1] AS schema,
       (array_agg(t.example) FILTER (WHERE t.registered_at IS NOT NULL))[1] AS example,
       bool_or(t.deprecated) AS deprecated,
       coalesce(sum(t.events) FILTER (WHERE $2::text IS NULL OR t.tenant_key = $2::text), 0)::bigint
           AS events,
       min(t.first_seen) FILTER (WHERE t.events > 0 AND ($2::text IS NULL OR t.tenant_key = $2::text))
           AS first_seen,
       max(t.last_seen) FILTER (WHERE t.events > 0 AND ($2::text IS NULL OR t.tenant_key = $2::text))
           AS last_seen
  FROM outbox.event_types t
 WHERE t.event_type > $1::text
   AND ($5::text IS NULL OR t.event_type = $5::text)
 GROUP BY t.event_type
HAVING ($3::boolean IS NULL OR bool_or(t.registered_at IS NOT NULL) = $3::boolean)
   AND (bool_or(t.registered_at IS NOT NULL)
        OR sum(t.events) FILTER (WHERE $2::text IS NULL OR t.tenant_key = $2::text) > 0)
 ORDER BY t.event_type
 LIMIT $4
