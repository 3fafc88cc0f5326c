-- Content filters of one routing batch, evaluated by PostgreSQL in one statement: one row per
-- (candidate delivery, filtered subscription that matched its event by type). Returns the
-- candidates with a filter that passed (matched = true) or errored (matched = null); a
-- candidate passes when any of its filters does. Errors are written to outbox.filter_errors
-- in the same statement.
--
-- Each distinct filter text is parsed once (filters), each event read once (events: one
-- primary-key probe per event, whatever the plan), its variables built only for filters that
-- use them. jsonb_path_match runs with
-- silent => true, so data errors give NULL rather than aborting the routing transaction;
-- with $7 = true (the router's retry after an error that silent mode does not catch) every
-- evaluation goes through outbox.filter_match_safe instead, which catches anything.
-- $1 candidate numbers, $2 event pks, $3 subscription ids, $4 endpoint ids,
-- $5 filter numbers (1-based into $6), $6 distinct filter texts, $7 safe mode
WITH filters AS MATERIALIZED (
    -- has_vars: the canonical text names every variable as $"name" (a string that merely
    -- contains $" makes it true too, which costs time, never correctness).
    SELECT p.n, p.filter, p.path, position('$"' IN p.path::text) > 0 AS has_vars
      FROM (SELECT f.n::int AS n, f.filter, f.filter::jsonpath AS path
              FROM unnest($6::text[]) WITH ORDINALITY AS f(filter, n)) p
),
checks AS (
    SELECT c.candidate, c.event_pk, c.subscription_id, c.endpoint_id, c.filter_n
      FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::int[])
           AS c(candidate, event_pk, subscription_id, endpoint_id, filter_n)
),
events AS MATERIALIZED (
    SELECT e.id, e.event_id, e.event_type, e.payload, e.tenant_id, e.resource_key, e.headers
      FROM (SELECT DISTINCT c.event_pk FROM checks c) k
     CROSS JOIN LATERAL (SELECT e.id, e.event_id, e.event_type, e.payload, e.tenant_id,
                                e.resource_key, e.headers
                           FROM outbox.events e
                          WHERE e.id = k.event_pk) e
),
-- The variables are built only for filters that use them.
inputs AS MATERIALIZED (
    SELECT c.candidate, c.subscription_id, c.endpoint_id, e.event_id, e.event_type, f.filter,
           e.payload, f.path,
           CASE WHEN f.has_vars
                THEN outbox.filter_vars(e.tenant_id, e.event_type, e.resource_key, e.headers)
                ELSE '{}'::jsonb END AS vars
      FROM checks c
      JOIN events e ON e.id = c.event_pk
      JOIN filters f ON f.n = c.filter_n
),
verdicts AS MATERIALIZED (
    SELECT i.*,
           CASE WHEN $7::bool THEN outbox.filter_match_safe(i.payload, i.path, i.vars)
                ELSE jsonb_path_match(i.payload, i.path, i.vars, silent => true) END AS matched
      FROM inputs i
),
errors AS (
    INSERT INTO outbox.filter_errors (subscription_id, endpoint_id, event_id, event_type, filter,
                                      message)
    SELECT v.subscription_id, v.endpoint_id, v.event_id, v.event_type, v.filter,
           outbox.filter_error_message(v.payload, v.path, v.vars)
      FROM verdicts v
     WHERE v.matched IS NULL
)
SELECT v.candidate, v.matched
  FROM verdicts v
 WHERE v.matched IS NOT FALSE
