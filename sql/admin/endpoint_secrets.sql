-- The active secrets of one endpoint, newest first. $1 endpoint id
SELECT e.secrets FROM outbox.endpoints e WHERE e.id = $1
