-- Every privilege `outboxd run` needs (the engine and the admin API /v1), checked for the
-- current role at start-up and after a permission error: the rows returned are the missing
-- ones. outbox.grant_roles() (migrations/V4) grants the same to outboxd_runtime; a test
-- checks that the two agree.
-- Objects are looked up in the catalogs rather than by name (has_table_privilege('x.y', …)
-- fails outright without USAGE on the schema), so everything missing is listed at once.
WITH need(kind, schema_name, object_name, privilege) AS (VALUES
    ('schema',   'outbox', 'outbox',                 'USAGE'),
    ('table',    'outbox', 'schema_history',         'SELECT'),
    ('table',    'outbox', 'events',                 'SELECT'),
    ('table',    'outbox', 'events',                 'INSERT'),
    ('table',    'outbox', 'events',                 'UPDATE'),
    ('table',    'outbox', 'events',                 'DELETE'),
    ('table',    'outbox', 'endpoints',              'SELECT'),
    ('table',    'outbox', 'endpoints',              'INSERT'),
    ('table',    'outbox', 'endpoints',              'UPDATE'),
    ('table',    'outbox', 'endpoints',              'DELETE'),
    ('table',    'outbox', 'subscriptions',          'SELECT'),
    ('table',    'outbox', 'subscriptions',          'INSERT'),
    ('table',    'outbox', 'subscriptions',          'UPDATE'),
    ('table',    'outbox', 'subscriptions',          'DELETE'),
    ('table',    'outbox', 'config_version',         'SELECT'),
    ('table',    'outbox', 'config_version',         'UPDATE'),
    ('table',    'outbox', 'deliveries',             'SELECT'),
    ('table',    'outbox', 'deliveries',             'INSERT'),
    ('table',    'outbox', 'deliveries',             'UPDATE'),
    ('table',    'outbox', 'deliveries',             'DELETE'),
    ('table',    'outbox', 'lanes',                  'SELECT'),
    ('table',    'outbox', 'lanes',                  'INSERT'),
    ('table',    'outbox', 'lanes',                  'UPDATE'),
    ('table',    'outbox', 'lanes',                  'DELETE'),
    ('table',    'outbox', 'attempts',               'SELECT'),
    ('table',    'outbox', 'attempts',               'INSERT'),
    ('table',    'outbox', 'attempts',               'DELETE'),
    ('table',    'outbox', 'leaders',                'SELECT'),
    ('table',    'outbox', 'leaders',                'INSERT'),
    ('table',    'outbox', 'leaders',                'UPDATE'),
    ('table',    'outbox', 'leaders',                'DELETE'),
    ('table',    'outbox', 'filter_errors',          'SELECT'),
    ('table',    'outbox', 'filter_errors',          'INSERT'),
    ('table',    'outbox', 'filter_errors',          'DELETE'),
    ('table',    'outbox', 'event_types',            'SELECT'),
    ('table',    'outbox', 'event_types',            'INSERT'),
    ('table',    'outbox', 'event_types',            'UPDATE'),
    ('function', 'outbox', 'check_filter',           'EXECUTE'),
    ('function', 'outbox', 'filter_vars',            'EXECUTE'),
    ('function', 'outbox', 'filter_match_safe',      'EXECUTE'),
    ('function', 'outbox', 'filter_error_message',   'EXECUTE'),
    ('function', 'outbox', 'check_retry_schedule',   'EXECUTE'),
    ('function', 'outbox', 'new_secret',             'EXECUTE'),
    ('function', 'outbox', 'rotate_secret',          'EXECUTE'),
    ('function', 'outbox', 'finish_secret_rotation', 'EXECUTE'),
    ('function', 'outbox', 'retry_dead',             'EXECUTE'),
    ('function', 'outbox', 'requeue',                'EXECUTE'),
    ('function', 'outbox', 'delivery_status',        'EXECUTE'),
    ('table',    'outbox', 'sources',                'SELECT'),
    ('table',    'outbox', 'sources',                'INSERT'),
    ('table',    'outbox', 'sources',                'UPDATE'),
    ('table',    'outbox', 'sources',                'DELETE'),
    ('table',    'outbox', 'inbound_requests',       'SELECT'),
    ('table',    'outbox', 'inbound_requests',       'INSERT'),
    ('table',    'outbox', 'inbound_requests',       'UPDATE'),
    ('table',    'outbox', 'inbound_requests',       'DELETE'),
    ('sequence', 'outbox', 'inbound_requests_id_seq', 'USAGE'),
    ('function', 'outbox', 'new_event_id',           'EXECUTE'),
    ('function', 'outbox', 'replay_source',          'EXECUTE'),
    ('function', 'outbox', 'inbound_payload',        'EXECUTE'),
    ('function', 'outbox', 'inbound_headers',        'EXECUTE'),
    ('table',    'outbox', 'event_types',            'DELETE'),
    ('function', 'outbox', 'register_event_type',    'EXECUTE'),
    ('function', 'outbox', 'unregister_event_type',  'EXECUTE'),
    ('function', 'outbox', 'set_portal_key',         'EXECUTE')
)
SELECT need.kind, need.schema_name || '.' || need.object_name AS object, need.privilege,
       (CASE need.kind WHEN 'schema' THEN n.oid WHEN 'table' THEN c.oid
                       WHEN 'sequence' THEN c.oid ELSE p.oid END)
           IS NOT NULL AS object_exists
  FROM need
  LEFT JOIN pg_namespace n ON n.nspname = need.schema_name
  LEFT JOIN pg_class c ON need.kind IN ('table', 'sequence') AND c.relnamespace = n.oid
                      AND c.relname = need.object_name
  LEFT JOIN LATERAL (
        -- A function counts as granted when any of its overloads is.
        SELECT f.oid FROM pg_proc f
         WHERE need.kind = 'function' AND f.pronamespace = n.oid AND f.proname = need.object_name
         ORDER BY has_function_privilege(f.oid, need.privilege) DESC
         LIMIT 1) p ON true
 WHERE NOT coalesce(CASE need.kind
                        WHEN 'schema' THEN has_schema_privilege(n.oid, need.privilege)
                        WHEN 'table' THEN has_table_privilege(c.oid, need.privilege)
                        WHEN 'sequence' THEN has_sequence_privilege(c.oid, need.privilege)
                        WHEN 'function' THEN has_function_privilege(p.oid, need.privilege)
                    END, false)
