-- 1 while anything is left to route or deliver. Index-only probes of the partial indexes:
-- cheap while the engine works.
SELECT (EXISTS (SELECT 1 FROM outbox.events WHERE routed_at IS NULL)
     OR EXISTS (SELECT 1 FROM outbox.deliveries WHERE state = 'pending' AND NOT held)
     OR EXISTS (SELECT 1 FROM outbox.deliveries WHERE held)
     OR EXISTS (SELECT 1 FROM outbox.deliveries WHERE state = 'delivering'))::int::int8
