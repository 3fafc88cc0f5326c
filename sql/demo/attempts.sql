-- Every attempt, for the demo's table.
SELECT delivery_id, attempt, coalesce(status_code::text, '-'), coalesce(error_kind, ''),
       duration_ms, coalesce(next_attempt_at::text, '')
  FROM outbox.attempts
 ORDER BY id
