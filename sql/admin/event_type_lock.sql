-- One registered event type, locked for a read-modify-write (PATCH). $1 name
SELECT t.name, t.description, t.schema, t.example, t.deprecated
  FROM outbox.event_types t
 WHERE t.name = $1
   FOR UPDATE
