-- Start a rotation: the new secret ($2, generated when null) signs alongside the old ones.
-- Returns the new secret. $1 endpoint id
SELECT outbox.rotate_secret($1::bigint, $2::text) AS secret
