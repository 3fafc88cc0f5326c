-- Change the URL ($2, validated by the caller; null: keep it) and description ($3) of one
-- endpoint in scope ($4 tenant; null: any). Returns its id when it exists in scope.
-- $1 endpoint id
UPDATE outbox.endpoints e
   SET url = coalesce($2::text, e.url), description = $3::text, updated_at = now()
 WHERE e.id = $1::bigint
   AND ($4::text IS NULL OR e.tenant_id = $4::text)
RETURNING e.id
