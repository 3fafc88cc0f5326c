-- One row per HTTP attempt; idempotent (a batch may be retried after a lost commit ack).
INSERT INTO outbox.attempts (delivery_id, event_id, endpoint_id, attempt, started_at,
                             duration_ms, status_code, error_kind, error_message,
                             response_excerpt, next_attempt_at, replica)
SELECT u.delivery_id, u.event_id, u.endpoint_id, u.attempt, u.started_at, u.duration_ms,
       u.status_code, u.error_kind, u.error_message, u.response_excerpt, u.next_attempt_at, $12
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::timestamptz[], $6::int[],
              $7::int[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
       AS u(delivery_id, event_id, endpoint_id, attempt, started_at, duration_ms, status_code,
            error_kind, error_message, response_excerpt, next_attempt_at)
ON CONFLICT (delivery_id, attempt) DO NOTHING
