-- Lease due deliveries: at most $4 in all and at most (max_in_flight - busy) per endpoint, so a
-- slow endpoint never takes more than its share. Walks only endpoints that have pending work
-- (a loose index scan over deliveries_due) and takes each one's oldest due rows, so the cost
-- does not grow with the backlog. Held deliveries (not lane heads) are not in the index.
-- Fairness: endpoints with due work are served round-robin, starting after $7 (the last
-- endpoint the previous claim served), each with at most an equal share of $4.
-- $1 endpoint ids busy in this replica, $2 their in-flight counts, $3 endpoint ids not to claim
-- (open circuits), $4 limit, $5 lease seconds, $6 replica id, $7 cursor.
-- Payloads come back inline when they are stored uncompressed and up to 256 KiB, or compressed
-- and up to 4 KiB (a compressed jsonb's stored size says little about its text: 100:1
-- happens); the others are fetched by the worker (sql/engine/fetch_payload.sql) under a
-- semaphore, so one claim holds at most $4 × 256 KiB of payload. A relayed inbound request's
-- body (bytea) follows the same rule (sql/engine/fetch_request_body.sql when it is large).
WITH RECURSIVE active(endpoint_id) AS (
    (SELECT d.endpoint_id FROM outbox.deliveries d
      WHERE d.state = 'pending' AND NOT d.held
      ORDER BY d.endpoint_id LIMIT 1)
  UNION ALL
    SELECT (SELECT d.endpoint_id FROM outbox.deliveries d
             WHERE d.state = 'pending' AND NOT d.held AND d.endpoint_id > a.endpoint_id
             ORDER BY d.endpoint_id LIMIT 1)
      FROM active a
     WHERE a.endpoint_id IS NOT NULL
),
quota AS (
    SELECT e.id AS endpoint_id, e.max_in_flight - coalesce(b.busy, 0) AS n
      FROM active a
      JOIN outbox.endpoints e ON e.id = a.endpoint_id AND e.enabled
      LEFT JOIN unnest($1::bigint[], $2::int[]) AS b(endpoint_id, busy) ON b.endpoint_id = e.id
     WHERE NOT (e.id = ANY($3::bigint[]))
       AND e.max_in_flight - coalesce(b.busy, 0) > 0
       -- One probe of deliveries_due per endpoint: a scalar subquery in the index's order
       -- (an EXISTS became a semi-join that read every due delivery of every endpoint; LIMIT
       -- 1 alone invites a sequential scan of a table that is mostly finished deliveries).
       AND (SELECT true FROM outbox.deliveries d
             WHERE d.endpoint_id = e.id AND d.state = 'pending' AND NOT d.held
               AND d.next_attempt_at <= now()
             ORDER BY d.next_attempt_at
             LIMIT 1)
),
fair AS MATERIALIZED (
    SELECT q.endpoint_id, least(q.n, ceil($4::bigint::float8 / count(*) OVER ())::int) AS n
      FROM quota q
     ORDER BY q.endpoint_id <= $7::bigint, q.endpoint_id
),
picked AS (
    SELECT p.id
      FROM fair f
     CROSS JOIN LATERAL (
            SELECT d.id FROM outbox.deliveries d
             WHERE d.endpoint_id = f.endpoint_id AND d.state = 'pending' AND NOT d.held
               AND d.next_attempt_at <= now()
             ORDER BY d.next_attempt_at
             LIMIT f.n
               FOR UPDATE SKIP LOCKED
           ) p
     LIMIT $4
)
UPDATE outbox.deliveries d
   SET state = 'delivering', claim_count = d.claim_count + 1,
       lease_until = now() + make_interval(secs => $5::float8), leased_by = $6,
       updated_at = now()
  FROM picked,
       outbox.events ev
       -- An event that relays a stored inbound request (request_id) is sent with the
       -- request's body bytes and content type, inline on the same terms as payloads. The
       -- one-time filter on ev.request_id keeps the probe off applications' JSON events.
       LEFT JOIN LATERAL (
            SELECT r.source, r.content_type, r.query, r.headers::text AS headers,
                   CASE WHEN pg_column_size(r.body) <= 262144
                         AND (pg_column_compression(r.body) IS NULL
                              OR pg_column_size(r.body) <= 4096)
                        THEN r.body END AS body
              FROM outbox.inbound_requests r
             WHERE ev.request_id IS NOT NULL AND r.id = ev.request_id
           ) rq ON true
 WHERE d.id = picked.id AND ev.id = d.event_pk
RETURNING now() AS db_now, d.id, d.event_pk, d.claim_count, d.attempt_count, d.endpoint_id,
          d.lane_key,
          ev.event_id, ev.created_at AS event_created_at, ev.headers::text AS headers,
          CASE WHEN pg_column_size(ev.payload) <= 262144
                AND (pg_column_compression(ev.payload) IS NULL
                     OR pg_column_size(ev.payload) <= 4096)
               THEN ev.payload::text END AS body,
          ev.request_id, rq.source AS request_source, rq.content_type AS request_content_type,
          rq.query AS request_query, rq.headers AS request_headers, rq.body AS request_body
