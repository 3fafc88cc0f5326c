-- Every privilege `outboxd run` needs (the engine and the admin API /v1), checked for the
-- current role at start-up and after a permission error: the rows returned are the missing
-- ones. The list is the outboxd_runtime rows of outbox.role_grants (migration V18), the same
-- rows outbox.grant_roles() grants, so the two cannot disagree; migrations insert rows there.
-- Objects are looked up with to_reg*() (NULL, not an error, when one is missing) so
-- everything missing is listed at once. Reading outbox.role_grants takes USAGE on the schema;
-- without it start-up stops earlier, at the schema version, with PostgreSQL's "permission
-- denied for schema outbox".
WITH need AS (
    SELECT g.object_kind, g.object_name, g.privilege, g.columns,
           CASE g.object_kind
               WHEN 'schema' THEN to_regnamespace(g.object_name)::oid
               WHEN 'function' THEN to_regprocedure(g.object_name)::oid
               ELSE to_regclass(g.object_name)::oid
           END AS oid
      FROM outbox.role_grants g
     WHERE g.role = 'outboxd_runtime'
)
SELECT need.object_kind AS kind,
       need.object_name
           || coalesce(' (' || array_to_string(need.columns, ', ') || ')', '') AS object,
       need.privilege, need.oid IS NOT NULL AS object_exists
  FROM need
 WHERE NOT coalesce(CASE need.object_kind
                        WHEN 'schema' THEN has_schema_privilege(need.oid, need.privilege)
                        WHEN 'table' THEN
                            CASE WHEN need.columns IS NULL
                                 THEN has_table_privilege(need.oid, need.privilege)
                                 ELSE (SELECT bool_and(has_column_privilege(need.oid, c,
                                                                             need.privilege))
                                         FROM unnest(need.columns) c)
                            END
                        WHEN 'sequence' THEN has_sequence_privilege(need.oid, need.privilege)
                        WHEN 'function' THEN has_function_privilege(need.oid, need.privilege)
                    END, false)
 ORDER BY need.object_kind = 'schema' DESC, need.object_name, need.privilege
