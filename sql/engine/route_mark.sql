-- Mark a batch routed (also events that matched no endpoint, and duplicates).
-- $1 event pks
UPDATE outbox.events SET routed_at = now() WHERE id = ANY($1::bigint[]) AND routed_at IS NULL
