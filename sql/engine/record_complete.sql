-- Apply a batch of attempt outcomes; finished lane heads hand over to the next delivery of
-- their lane. An outcome applies only if the delivery is still leased under the same claim
-- (a replica whose lease expired cannot overwrite the replica that took over).
-- $1 ids, $2 claim counts, $3 new states, $4 next attempt times, $5 statuses, $6 errors
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::int[],
                         $6::text[])
           AS u(id, claim_count, state, next_attempt_at, status, error)
),
applied AS (
    UPDATE outbox.deliveries d
       SET state = i.state,
           attempt_count = d.attempt_count + 1,
           next_attempt_at = coalesce(i.next_attempt_at, d.next_attempt_at),
           lease_until = NULL, leased_by = NULL,
           last_status = i.status, last_error = i.error,
           completed_at = CASE WHEN i.state IN ('succeeded', 'dead') THEN now() END,
           updated_at = now()
      FROM input i
     WHERE d.id = i.id AND d.claim_count = i.claim_count AND d.state = 'delivering'
    RETURNING d.id, d.endpoint_id, d.lane_key, d.state
),
finished AS (
    SELECT a.endpoint_id, a.lane_key, count(*)::int AS n
      FROM applied a
     WHERE a.lane_key IS NOT NULL AND a.state IN ('succeeded', 'dead')
     GROUP BY 1, 2
),
lanes AS (
    UPDATE outbox.lanes l
       SET pending = greatest(l.pending - f.n, 0), updated_at = now()
      FROM finished f
     WHERE l.endpoint_id = f.endpoint_id AND l.lane_key = f.lane_key
    RETURNING l.endpoint_id, l.lane_key, l.pending
),
promoted AS (
    UPDATE outbox.deliveries d
       SET held = false, next_attempt_at = now(), updated_at = now()
     WHERE d.id IN (SELECT (SELECT h.id FROM outbox.deliveries h
                             WHERE h.endpoint_id = l.endpoint_id AND h.lane_key = l.lane_key
                               AND h.held
                             ORDER BY h.id LIMIT 1)
                      FROM lanes l
                     WHERE l.pending > 0)
    RETURNING d.id
)
SELECT (SELECT count(*) FROM applied) AS applied, (SELECT count(*) FROM promoted) AS promoted
