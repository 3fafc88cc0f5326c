-- A page of event types in name order: the registered ones (outbox.event_types) and the ones
-- seen in the outbox (outbox.event_type_stats, maintained by the router: no scan of
-- outbox.events), each with how many events of it were routed.
-- $1 name to start after ('' for the first page), $2 registered filter (null: both; true:
-- registered only; false: seen but not registered), $3 rows
WITH names AS (
    (SELECT t.name FROM outbox.event_types t
      WHERE t.name > $1::text AND ($2::bool IS NULL OR $2::bool)
      ORDER BY t.name
      LIMIT $3)
    UNION
    (SELECT s.name FROM outbox.event_type_stats s
      WHERE s.name > $1::text
        AND ($2::bool IS NULL
             OR (NOT $2::bool
                 AND NOT EXISTS (SELECT 1 FROM outbox.event_types t WHERE t.name = s.name)))
      ORDER BY s.name
      LIMIT $3)
)
SELECT k.name, t.name IS NOT NULL AS registered, coalesce(t.description, '') AS description,
       t.schema, t.example, coalesce(t.deprecated, false) AS deprecated,
       coalesce(s.events, 0) AS events_seen, s.first_seen, s.last_seen, t.created_at,
       t.updated_at
  FROM (SELECT n.name FROM names n ORDER BY n.name LIMIT $3) k
  LEFT JOIN outbox.event_types t ON t.name = k.name
  LEFT JOIN outbox.event_type_stats s ON s.name = k.name
 ORDER BY k.name
