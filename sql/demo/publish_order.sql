-- One step of order 42, as an application publishes it in its own transaction.
SELECT outbox.publish($1, $2::text::jsonb, resource_key => 'order:42', tenant_id => 'acme')
