-- Gives the stats lease back at shutdown, so another replica takes it over at once.
-- $1 replica id
DELETE FROM outbox.leaders WHERE role = 'stats' AND holder = $1
