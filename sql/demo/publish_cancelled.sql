-- Published in a transaction the demo rolls back: it must never arrive.
SELECT outbox.publish('order.cancelled', '{"order": 43}'::jsonb,
                      resource_key => 'order:43', tenant_id => 'acme')
