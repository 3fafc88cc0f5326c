-- A plain INSERT (no function); the demo's receiver fails its first attempt ("retry me").
INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload)
VALUES ('invoice.paid', 'invoice:7', 'acme', '{"invoice": 7, "note": "retry me"}')
