-- Session settings of a new pooled connection behind a session-mode pooler (which refuses
-- the start-up parameter `options`); why they are off: src/db.rs, Connector::pool.
SELECT set_config('jit', 'off', false),
       set_config('max_parallel_workers_per_gather', '0', false)
