-- An internal endpoint that sees every tenant's events.
UPDATE outbox.endpoints SET all_tenants = true WHERE id = $1
