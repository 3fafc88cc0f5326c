-- Re-running the demo against the same database starts from a clean slate of its endpoints.
DELETE FROM outbox.endpoints WHERE url LIKE 'http://127.0.0.1:%/hooks/demo-%'
