-- Endpoints and subscriptions from SQL.
-- Create an endpoint for tenant 'acme' receiving order events (returns its id; the secret is
-- generated when not given: read it back from outbox.endpoints.secrets[1]).
SELECT outbox.add_endpoint('https://hooks.example.com/outbox', '{order.*}', 'acme');
-- Pause / resume an endpoint (its pending deliveries wait while disabled).
UPDATE outbox.endpoints SET enabled = false, disabled_reason = 'maintenance' WHERE id = 1;
UPDATE outbox.endpoints SET enabled = true, disabled_reason = NULL WHERE id = 1;
-- Subscribe it to more event types.
INSERT INTO outbox.subscriptions (endpoint_id, event_types) VALUES (1, '{invoice.paid}');
-- Only some of them: a content filter (SQL/JSON path; README "Content filters").
INSERT INTO outbox.subscriptions (endpoint_id, event_types, filter)
VALUES (1, '{order.paid}', '$.amount > 1000 && $.currency == "EUR"');
-- Filters that could not decide on an event (a type mismatch, a missing field in strict mode).
SELECT * FROM outbox.filter_errors ORDER BY id DESC LIMIT 20;
-- Its own retry policy (NULL: OUTBOXD_RETRY_SCHEDULE / OUTBOXD_MAX_AGE).
UPDATE outbox.endpoints SET retry_schedule = '1m,10m,1h', max_age = '3 days' WHERE id = 1;
-- Present a client certificate (mutual TLS): files acme-mtls.crt and acme-mtls.key in
-- OUTBOXD_CLIENT_CERT_DIR (README "Mutual TLS to endpoints"); NULL: none.
UPDATE outbox.endpoints SET client_certificate = 'acme-mtls' WHERE id = 1;
-- Rotate its secret: the new one signs alongside the old until the rotation is finished.
SELECT outbox.rotate_secret(1);
SELECT outbox.finish_secret_rotation(1);
-- Retry its dead deliveries (all, or one by delivery id).
SELECT outbox.retry_dead(1);
SELECT outbox.retry_dead(1, 42);
