SELECT count(*) FROM outbox.deliveries
