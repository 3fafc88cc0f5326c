-- Store the portal's link key ($1, 32 bytes) and the base URL of links ($2) for
-- outbox.portal_link() (migrations/V15); changes nothing when both are as stored.
SELECT outbox.set_portal_key($1::bytea, $2::text)
