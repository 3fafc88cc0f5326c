-- Wait for the routing transaction in progress (the router's lock, sql/engine/route_lock.sql)
-- and keep the router out until this transaction ends: deleting an endpoint while a router
-- that has not seen the deletion inserts deliveries for it would fail that routing batch.
-- $1: crate::locks::ROUTER.
SELECT pg_advisory_xact_lock($1)
