-- Delete a subscription. $1 subscription id
DELETE FROM outbox.subscriptions s WHERE s.id = $1 RETURNING s.id
