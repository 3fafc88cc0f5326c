-- Where a replay since $1 starts: just before the first event created at or after $1 minus a
-- margin (events_created_at; ids follow insert order, created_at the transaction's start).
-- The replay re-checks created_at exactly.
SELECT coalesce((SELECT ev.id - 1 FROM outbox.events ev
                  WHERE ev.created_at >= $1::timestamptz - interval '10 minutes'
                  ORDER BY ev.created_at LIMIT 1),
                (SELECT max(ev.id) FROM outbox.events ev),
                0)::bigint AS cursor
