-- Replace the subscriptions of one endpoint in scope ($3 tenant; null: any) with one active
-- subscription to the patterns $2 (validated by the caller), without a content filter.
-- Returns the new subscription's id when the endpoint exists in scope. $1 endpoint id
WITH ep AS (
    SELECT e.id FROM outbox.endpoints e
     WHERE e.id = $1::bigint AND ($3::text IS NULL OR e.tenant_id = $3::text)
),
gone AS (
    DELETE FROM outbox.subscriptions s USING ep WHERE s.endpoint_id = ep.id RETURNING s.id
)
INSERT INTO outbox.subscriptions AS s (endpoint_id, event_types, active)
SELECT ep.id, $2::text[], true FROM ep
RETURNING s.id
