-- Validates a content filter before it is saved: raises PostgreSQL's jsonpath syntax error, or
-- an error naming an unknown variable (the subscriptions' CHECK runs the same function).
-- $1 filter
SELECT outbox.check_filter($1::text)
