-- After a claim whose result was lost (the connection broke; the UPDATE may have committed),
-- give back every delivery leased to this replica that it does not know it holds (found in
-- the 'delivering' range of deliveries_status: what is in flight).
-- $1 replica id, $2 delivery ids this replica holds
UPDATE outbox.deliveries
   SET state = 'pending', lease_until = NULL, leased_by = NULL, updated_at = now()
 WHERE outbox.delivery_status(state, held, attempt_count) = 'delivering'
   AND state = 'delivering' AND leased_by = $1 AND NOT (id = ANY($2::bigint[]))
