-- 410 Gone: the receiver asked us to stop. Its pending deliveries wait until re-enabled.
-- $1 endpoint ids, $2 reason
UPDATE outbox.endpoints
   SET enabled = false, disabled_reason = $2, updated_at = now()
 WHERE id = ANY($1::bigint[]) AND enabled
