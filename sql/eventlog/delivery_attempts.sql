-- The latest attempts of some deliveries ($1 ids; the caller has checked their scope), at
-- most $2 each, newest first: one range of attempts_delivery_attempt per delivery.
SELECT u.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.error_kind,
       a.error_message, a.response_excerpt, a.next_attempt_at, a.replica
  FROM unnest($1::bigint[]) AS u(delivery_id)
 CROSS JOIN LATERAL (
        SELECT x.* FROM outbox.attempts x
         WHERE x.delivery_id = u.delivery_id
         ORDER BY x.attempt DESC
         LIMIT $2) a
 ORDER BY u.delivery_id, a.attempt DESC
