-- Where a replay since $1 starts: just before the smallest id among events created at or
-- after $1 (ids follow insert order, created_at is the transaction's start, so the first
-- event by time need not be the first by id). Reads the events_created_at range once: a
-- replay walks all of those events anyway. Nothing since $1: after the newest event.
SELECT coalesce((SELECT min(ev.id) - 1 FROM outbox.events ev
                  WHERE ev.created_at >= $1::timestamptz),
                (SELECT max(ev.id) FROM outbox.events ev),
                0)::bigint AS cursor
