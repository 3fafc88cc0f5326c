-- Delete an endpoint; its subscriptions, deliveries and lanes go with it (ON DELETE CASCADE),
-- its rows in outbox.attempts stay. $1 endpoint id
DELETE FROM outbox.endpoints e WHERE e.id = $1 RETURNING e.id
