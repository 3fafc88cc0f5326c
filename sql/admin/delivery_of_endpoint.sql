-- Whether delivery $1 belongs to endpoint $2.
SELECT d.id FROM outbox.deliveries d WHERE d.id = $1 AND d.endpoint_id = $2
