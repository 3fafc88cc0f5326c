-- Lock the lanes whose head is finishing, in the same order the router locks them.
-- $1 endpoint ids, $2 lane keys
SELECT l.endpoint_id
  FROM outbox.lanes l
 WHERE (l.endpoint_id, l.lane_key) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
 ORDER BY l.endpoint_id, l.lane_key
   FOR UPDATE
