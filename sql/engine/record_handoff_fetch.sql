-- What a worker needs for the deliveries just handed off to this replica by
-- sql/engine/record_complete.sql, in the same transaction: the claim's columns, payloads and
-- relayed request bodies inline on the same terms (sql/engine/claim.sql says why).
-- $1 delivery ids (leased to this replica by this transaction)
SELECT now() AS db_now, d.id, d.event_pk, d.claim_count, d.attempt_count, d.endpoint_id,
       d.lane_key,
       ev.event_id, ev.created_at AS event_created_at, ev.headers::text AS headers,
       CASE WHEN pg_column_size(ev.payload) <= 262144
             AND (pg_column_compression(ev.payload) IS NULL
                  OR pg_column_size(ev.payload) <= 4096)
            THEN ev.payload::text END AS body,
       ev.request_id, rq.source AS request_source, rq.content_type AS request_content_type,
       rq.query AS request_query, rq.headers AS request_headers, rq.body AS request_body
  FROM outbox.deliveries d
  JOIN outbox.events ev ON ev.id = d.event_pk
  LEFT JOIN LATERAL (
       SELECT r.source, r.content_type, r.query, r.headers::text AS headers,
              CASE WHEN pg_column_size(r.body) <= 262144
                    AND (pg_column_compression(r.body) IS NULL
                         OR pg_column_size(r.body) <= 4096)
                   THEN r.body END AS body
         FROM outbox.inbound_requests r
        WHERE ev.request_id IS NOT NULL AND r.id = ev.request_id
       ) rq ON true
 WHERE d.id = ANY($1::bigint[])
