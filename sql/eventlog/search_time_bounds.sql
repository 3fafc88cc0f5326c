-- The events.id range a time range can reach, from events_created_at: the first event
-- created at or after $1, and the first created at or after $2 (null when none, or when the
-- bound is null). The caller widens the range by a margin first: ids follow insert order and
-- created_at is the transaction's start, so they disagree for transactions that run long;
-- the search re-checks created_at exactly.
SELECT (SELECT ev.id FROM outbox.events ev
         WHERE $1::timestamptz IS NOT NULL AND ev.created_at >= $1::timestamptz
         ORDER BY ev.created_at LIMIT 1) AS lo,
       (SELECT ev.id FROM outbox.events ev
         WHERE $2::timestamptz IS NOT NULL AND ev.created_at >= $2::timestamptz
         ORDER BY ev.created_at LIMIT 1) AS hi
