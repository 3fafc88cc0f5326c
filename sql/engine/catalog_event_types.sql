-- The registered event types (V14's catalog), for OUTBOXD_STRICT_EVENT_TYPES: loaded with the
-- catalog, whose version outbox.register_event_type bumps.
SELECT t.event_type FROM outbox.event_types t
 WHERE t.tenant_key = '' AND t.registered_at IS NOT NULL
