-- Forget lanes that have been idle for an hour (a lane row is recreated on its next event).
-- $1 batch
DELETE FROM outbox.lanes l
 USING (SELECT endpoint_id, lane_key FROM outbox.lanes
         WHERE pending = 0 AND updated_at < now() - interval '1 hour'
         LIMIT $1
           FOR UPDATE SKIP LOCKED) idle
 WHERE l.endpoint_id = idle.endpoint_id AND l.lane_key = idle.lane_key
