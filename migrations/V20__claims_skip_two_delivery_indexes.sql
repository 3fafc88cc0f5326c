-- The claim's update of a delivery (pending → delivering) cannot be a HOT update: it changes
-- `state`, which the partial indexes of outbox.deliveries name, so it writes an entry into
-- every index whose predicate the new version satisfies. Index maintenance is the largest
-- part of PostgreSQL's CPU per delivery (38 % in a perf profile of the steady bench, issue
-- 16 round 5). Two of the claim's entries were redundant:
--
-- * deliveries_leased (lease_until) WHERE state = 'delivering': the rescue of expired leases,
--   the lease releases and the in-flight gauge now read the 'delivering' range of
--   deliveries_status (V9), which holds the same rows (what is in flight: bounded by the
--   replicas' workers, not by the backlog).
-- * deliveries_lane_head held pending and delivering lane heads; only the console's "waiting
--   behind" of a held delivery reads it. A pending head is now found here, a delivering one
--   in its endpoint's 'delivering' range of deliveries_endpoint_status (V9).
--
-- Old replicas keep working while they are replaced: no statement of theirs changes meaning.
-- Their lease rescue (every few seconds) loses the index it probed and scans for expired
-- leases instead, until they are gone.
--
-- On a large outbox, build the new index first without blocking the router (CREATE INDEX
-- CONCURRENTLY): sql/upgrade/V20_index_concurrently.sql; this migration then finds it.
--
-- The strongest lock first. Built and dropped under weaker locks taken one after the other,
-- the index build (ShareLock) and the drops (AccessExclusiveLock) deadlocked with the
-- replicas' record statement (RowShareLock for its FOR UPDATE probe, then waiting for
-- RowExclusiveLock) in two live-upgrade soaks of four (tools/chaos --upgrade-from,
-- RELIABILITY.md). Taken at once, the lock waits for the statements in flight and lets none
-- start before the commit: the replicas pause for the index build (an instant when the
-- script above built it). `outboxd migrate` also retries a migration cancelled by a deadlock.
LOCK TABLE outbox.deliveries IN ACCESS EXCLUSIVE MODE;
CREATE INDEX IF NOT EXISTS deliveries_lane_pending_head
    ON outbox.deliveries (endpoint_id, lane_key)
    WHERE lane_key IS NOT NULL AND NOT held AND state = 'pending';
DROP INDEX IF EXISTS outbox.deliveries_lane_head;
DROP INDEX IF EXISTS outbox.deliveries_leased;
