-- Deliveries whose replica died (lease expired) go back to pending, still their lane's head.
-- They are found in the 'delivering' range of deliveries_status (what is in flight; V20: the
-- claim writes no entry into an index of its own for them), walked in the index's order: a
-- plain index scan marks the entries of finished deliveries dead as it passes them (a bitmap
-- scan would not, and they would pile up until vacuum).
-- $1 batch size
WITH expired AS (
    SELECT id FROM outbox.deliveries
     WHERE outbox.delivery_status(state, held, attempt_count) = 'delivering'
       AND state = 'delivering' AND lease_until < now()
     ORDER BY event_pk
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
