-- A page of subscriptions in id order.
-- $1 id to start after (0 for the first page), $2 endpoint filter (null: all), $3 rows
SELECT s.id, s.endpoint_id, s.event_types, s.filter, s.active, s.created_at, s.updated_at
  FROM outbox.subscriptions s
 WHERE s.id > $1
   AND ($2::bigint IS NULL OR s.endpoint_id = $2::bigint)
 ORDER BY s.id
 LIMIT $3
