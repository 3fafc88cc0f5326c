-- Takes or renews the stats lease (outbox.leaders, role 'stats'): returns a row when this
-- replica holds it for the next $2 seconds, none when another replica's lease is still valid.
-- $1 replica id, $2 lease seconds
INSERT INTO outbox.leaders AS l (role, holder, expires_at)
VALUES ('stats', $1, now() + make_interval(secs => $2))
ON CONFLICT (role) DO UPDATE
   SET holder = excluded.holder, expires_at = excluded.expires_at
 WHERE l.holder = excluded.holder OR l.expires_at < now()
RETURNING l.holder
