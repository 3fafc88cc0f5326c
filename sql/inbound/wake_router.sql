-- Wake the routers of every replica after the inbound writer committed a batch of events
-- (accept.sql sends no NOTIFY of its own, see there). Its own transaction, committed
-- asynchronously: it writes nothing that must survive a crash (a lost wake-up costs one poll
-- interval), so it holds the notify lock only for an instant, never across a WAL flush.
SELECT set_config('synchronous_commit', 'off', true), pg_notify('outboxd_events', '')
