-- Apply a batch of attempt outcomes; finished lane heads hand over to the next delivery of
-- their lane. An outcome applies only if the delivery is still leased under the same claim
-- (a replica whose lease expired cannot overwrite the replica that took over).
-- Hot lane hand-off: for endpoints in $7 (with at most $8 lanes each, what the recording
-- replica's claim policy allows: free in-flight slots, no rate limit, circuit closed), the
-- promoted delivery is leased at once to this replica ($10, for $9 seconds), exactly as a claim
-- would lease it (claim_count + 1, lease_until): the replica sends it right after the commit,
-- without waiting for a claim round. Other promoted deliveries become due lane heads, claimed
-- as usual. A handed-off lease that is never reported expires and is rescued like any other.
-- Rows: one per handed-off delivery, with the claim's columns (what its worker needs, payloads
-- and relayed request bodies inline on the same terms as sql/engine/claim.sql), or a single
-- row of NULLs there when nothing was handed off; `applied` and `promoted` on every row.
-- $1 ids, $2 claim counts, $3 new states, $4 next attempt times, $5 statuses, $6 errors,
-- $7 endpoint ids that may take hand-offs, $8 how many each, $9 lease seconds, $10 replica id
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::int[],
                         $6::text[])
           AS u(id, claim_count, state, next_attempt_at, status, error)
),
-- The deliveries still leased under the same claim, found and locked by primary key, one
-- probe each (a lateral subquery with FOR UPDATE is never flattened into a join); locked, a
-- row cannot change before the update below. Written as a plain UPDATE … FROM input, the
-- statement's generic plan (prepared once per connection, while the table was small) read
-- every entry of deliveries_leased (dropped by V20) with a bitmap scan, dead ones included (a bitmap scan
-- never marks them dead): 67 000 entries and 1 800 heap pages per batch of 250 in the steady
-- bench (BENCHMARKS.md, issue 16 round 4). The record transaction also turns sequential
-- scans off (src/record.rs), so the update finds each row by primary key too.
target AS MATERIALIZED (
    SELECT i.*
      FROM input i
     CROSS JOIN LATERAL (
            SELECT FROM outbox.deliveries d
             WHERE d.id = i.id AND d.claim_count = i.claim_count AND d.state = 'delivering'
               FOR UPDATE
           ) t
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
      FROM target i
     WHERE d.id = i.id
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
nexts AS (
    SELECT l.endpoint_id,
           (SELECT h.id FROM outbox.deliveries h
             WHERE h.endpoint_id = l.endpoint_id AND h.lane_key = l.lane_key
               AND h.held
             ORDER BY h.id LIMIT 1) AS id
      FROM lanes l
     WHERE l.pending > 0
),
quota AS (
    SELECT q.endpoint_id, q.n
      FROM unnest($7::bigint[], $8::int[]) AS q(endpoint_id, n)
      JOIN outbox.endpoints e ON e.id = q.endpoint_id AND e.enabled
),
chosen AS (
    SELECT n.id,
           coalesce(row_number() OVER (PARTITION BY n.endpoint_id ORDER BY n.id) <= q.n,
                    false) AS handoff
      FROM nexts n
      LEFT JOIN quota q ON q.endpoint_id = n.endpoint_id
     WHERE n.id IS NOT NULL
),
promoted AS (
    UPDATE outbox.deliveries d
       SET held = false, next_attempt_at = now(), updated_at = now(),
           state = CASE WHEN c.handoff THEN 'delivering' ELSE d.state END,
           claim_count = d.claim_count + CASE WHEN c.handoff THEN 1 ELSE 0 END,
           lease_until = CASE WHEN c.handoff
                              THEN now() + make_interval(secs => $9::float8) END,
           leased_by = CASE WHEN c.handoff THEN $10::text END
      FROM chosen c
     WHERE d.id = c.id
    RETURNING d.id, d.event_pk, d.claim_count, d.attempt_count, d.endpoint_id, d.lane_key,
              c.handoff
),
handed AS (
    SELECT now() AS db_now, p.id, p.event_pk, p.claim_count, p.attempt_count, p.endpoint_id,
           p.lane_key,
           ev.event_id, ev.created_at AS event_created_at, ev.headers::text AS headers,
           CASE WHEN pg_column_size(ev.payload) <= 262144
                 AND (pg_column_compression(ev.payload) IS NULL
                      OR pg_column_size(ev.payload) <= 4096)
                THEN ev.payload::text END AS body,
           ev.request_id, rq.source AS request_source,
           rq.content_type AS request_content_type, rq.query AS request_query,
           rq.headers AS request_headers, rq.body AS request_body
      FROM promoted p
      JOIN outbox.events ev ON ev.id = p.event_pk
      LEFT JOIN LATERAL (
           SELECT r.source, r.content_type, r.query, r.headers::text AS headers,
                  CASE WHEN pg_column_size(r.body) <= 262144
                        AND (pg_column_compression(r.body) IS NULL
                             OR pg_column_size(r.body) <= 4096)
                       THEN r.body END AS body
             FROM outbox.inbound_requests r
            WHERE ev.request_id IS NOT NULL AND r.id = ev.request_id
           ) rq ON true
     WHERE p.handoff
)
SELECT (SELECT count(*) FROM applied) AS applied, (SELECT count(*) FROM promoted) AS promoted,
       h.*
  FROM (SELECT) AS one
  LEFT JOIN handed h ON true
 ORDER BY h.id
