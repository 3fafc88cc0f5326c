-- The active secrets of one endpoint in scope ($2 tenant; null: any), newest first.
-- $1 endpoint id
SELECT e.secrets
  FROM outbox.endpoints e
 WHERE e.id = $1::bigint
   AND ($2::text IS NULL OR e.tenant_id = $2::text)
