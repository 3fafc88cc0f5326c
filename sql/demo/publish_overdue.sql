-- An event published $1 seconds ago (older than the retry max age), whose receiver fails:
-- its one delivery (only the all-tenants endpoint takes invoices) dies at its first failure
-- and waits in the console for a retry.
INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, created_at)
VALUES ('invoice.refunded', 'invoice:8', 'acme',
        '{"invoice": 8, "status": "refunded", "note": "dead until retried"}',
        now() - make_interval(secs => $1::float8))
RETURNING event_id
