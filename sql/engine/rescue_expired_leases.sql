-- Deliveries whose replica died (lease expired) go back to pending, still their lane's head.
-- $1 batch size
WITH expired AS (
    SELECT id FROM outbox.deliveries
     WHERE state = 'delivering' AND lease_until < now()
     ORDER BY lease_until
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE outbox.deliveries d
   SET state = 'pending', next_attempt_at = now(), updated_at = now(),
       last_error = 'lease expired: replica ' || coalesce(d.leased_by, '?')
                    || ' did not report the attempt',
       lease_until = NULL, leased_by = NULL
  FROM expired
 WHERE d.id = expired.id
RETURNING d.id
