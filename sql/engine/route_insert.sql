-- Create deliveries in routing order (ids follow array order: lane order is id order).
-- $1 event pks, $2 endpoint ids, $3 lane keys (null = unordered), $4 held flags
INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, held)
SELECT u.event_pk, u.endpoint_id, u.lane_key, u.held
  FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bool[])
       WITH ORDINALITY AS u(event_pk, endpoint_id, lane_key, held, ord)
 ORDER BY u.ord
