-- Revive dead deliveries of an endpoint (all, or the one with id $2). Returns how many.
-- $1 endpoint id
SELECT outbox.retry_dead($1::bigint, $2::bigint) AS revived
