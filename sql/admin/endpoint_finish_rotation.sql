-- End a rotation: keep only the newest secret. $1 endpoint id
SELECT outbox.finish_secret_rotation($1::bigint)
