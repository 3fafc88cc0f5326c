-- Graceful shutdown: give back deliveries this replica claimed but did not finish.
-- $1 replica id, $2 delivery ids
UPDATE outbox.deliveries
   SET state = 'pending', lease_until = NULL, leased_by = NULL, updated_at = now()
 WHERE state = 'delivering' AND leased_by = $1 AND id = ANY($2::bigint[])
