-- The catalog's registered event types (V14), for the console's test-event picker and the
-- portal's endpoint form: description, example payload, deprecated. $1 only these names
-- (null: any), $2 rows at most. The catalog is global (tenant_key ''), the same for every
-- tenant: it documents types, it holds no tenant's data.
SELECT t.event_type, t.description, t.example, t.deprecated
  FROM outbox.event_types t
 WHERE t.tenant_key = '' AND t.registered_at IS NOT NULL
   AND ($1::text[] IS NULL OR t.event_type = ANY ($1::text[]))
 ORDER BY t.event_type
 LIMIT $2
