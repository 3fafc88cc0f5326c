-- Put deliveries ($1 ids, those in scope: $3 tenant; null: any) that are in state $2 ('dead'
-- or 'succeeded') back in their lanes (outbox.requeue). Returns how many.
SELECT outbox.requeue(
           ARRAY(SELECT d.id FROM outbox.deliveries d
                   JOIN outbox.endpoints e ON e.id = d.endpoint_id
                  WHERE d.id = ANY($1::bigint[])
                    AND ($3::text IS NULL OR e.tenant_id = $3::text)),
           $2::text) AS requeued
