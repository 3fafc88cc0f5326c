-- The most recent attempts for one event_id, oldest first. $1 event_id, $2 how many
SELECT a.id, a.delivery_id, a.endpoint_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.error_kind, a.error_message, a.response_excerpt, a.next_attempt_at,
       a.replica
  FROM (SELECT * FROM outbox.attempts x WHERE x.event_id = $1 ORDER BY x.id DESC LIMIT $2) a
 ORDER BY a.id
