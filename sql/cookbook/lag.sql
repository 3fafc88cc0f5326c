-- How far behind is outboxd? (unrouted events, routing lag, delivery backlog)
SELECT * FROM outbox.lag;
