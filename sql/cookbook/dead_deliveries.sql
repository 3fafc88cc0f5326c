-- Dead deliveries, newest first.
SELECT * FROM outbox.dead_deliveries ORDER BY died_at DESC LIMIT 100;
