-- Lock the lanes whose head is finishing, in the same order the router locks them
-- ((endpoint_id, lane_key), sorted here, in the database's collation).
-- One primary-key probe per lane: a lateral subquery with FOR UPDATE is never flattened, so
-- its plan cannot turn into a scan of every lane. The engine prepares its statements once
-- per connection, and a generic plan made while outbox.lanes was empty (a fresh install, the
-- bench) was a sequential scan of the whole table on every record transaction: 13 ms at
-- 62 000 lanes, until an ANALYZE replaced it (BENCHMARKS.md, issue 16 round 4).
-- $1 endpoint ids, $2 lane keys
SELECT l.endpoint_id
  FROM (SELECT k.endpoint_id, k.lane_key
          FROM unnest($1::bigint[], $2::text[]) AS k(endpoint_id, lane_key)
         ORDER BY k.endpoint_id, k.lane_key) k
 CROSS JOIN LATERAL (
        SELECT l.endpoint_id FROM outbox.lanes l
         WHERE l.endpoint_id = k.endpoint_id AND l.lane_key = k.lane_key
           FOR UPDATE
       ) l
