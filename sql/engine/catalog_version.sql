-- The routing configuration's version; bumped by triggers on endpoints and subscriptions.
SELECT version FROM outbox.config_version
