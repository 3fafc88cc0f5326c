-- Behind a transaction-mode pooler the session settings cannot be sent; start-up reads
-- what the role gives (ALTER ROLE … SET) and says what to change.
SELECT current_user::text, current_setting('jit'), current_setting('max_parallel_workers_per_gather')
