-- Delete a source. Its stored requests stay (the audit) until their retention; events already
-- relaying them are still delivered. $1 name
DELETE FROM outbox.sources s WHERE s.name = $1 RETURNING s.id
