-- One event type, registered or only seen. $1 name
SELECT k.name, t.name IS NOT NULL AS registered, coalesce(t.description, '') AS description,
       t.schema, t.example, coalesce(t.deprecated, false) AS deprecated,
       coalesce(s.events, 0) AS events_seen, s.first_seen, s.last_seen, t.created_at,
       t.updated_at
  FROM (SELECT $1::text AS name) k
  LEFT JOIN outbox.event_types t ON t.name = k.name
  LEFT JOIN outbox.event_type_stats s ON s.name = k.name
 WHERE t.name IS NOT NULL OR s.name IS NOT NULL
