-- Enable or disable one endpoint in scope ($4 tenant; null: any). Enabling clears
-- disabled_reason; disabling sets it to $3. Its deliveries stay: a disabled endpoint's wait
-- until it is enabled again, and events published meanwhile are not routed to it.
-- Returns its id when it exists. $1 endpoint id, $2 enabled
UPDATE outbox.endpoints e
   SET enabled = $2::boolean,
       disabled_reason = CASE WHEN $2::boolean THEN NULL ELSE $3::text END,
       updated_at = now()
 WHERE e.id = $1::bigint
   AND ($4::text IS NULL OR e.tenant_id = $4::text)
RETURNING e.id
