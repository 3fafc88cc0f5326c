-- $2 events of the quick load starting at number $1, over 1 000 resource keys.
INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload)
SELECT 'order.updated', 'order:' || (g % 1000), 'acme',
       jsonb_build_object('n', g, 'status', 'updated')
  FROM generate_series($1::bigint, $1::bigint + $2 - 1) g
