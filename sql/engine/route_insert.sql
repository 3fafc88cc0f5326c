-- Create a batch's deliveries in one statement (routing, and an operator's replay): evaluate
-- the content filters of the candidates that have them, count the lanes of what passes (locking
-- lane rows in (endpoint_id, lane_key) order), and insert what passes in routing order
-- (delivery ids follow it, and lane order is id order). Each new delivery is `held` unless it
-- is the first new one of a lane that was idle before this statement.
--
-- Filters: each distinct text is parsed once (filters); each event a filter needs is read here,
-- by primary key, and nowhere else (the sidecar never fetches a payload to route); the
-- variables are built only for filters that use them. An inbound event (payload NULL) is
-- filtered on its stored request: the body when it is JSON, else the JSON null, and the
-- request's headers as $headers (outbox.inbound_payload, outbox.inbound_headers; V14). jsonb_path_match runs with
-- silent => true, so data errors give NULL rather than aborting the transaction; a candidate
-- passes when any of its filters gives true, and a NULL is written to outbox.filter_errors here
-- too. With $8 = true (the router's retry after an error that silent mode does not catch, and
-- replays) every evaluation goes through outbox.filter_match_safe, which catches anything.
--
-- The lane upsert may wait for a lane lock that the recorder holds. That is safe inside this
-- statement (unlike in record_complete): the upsert works on the lane row's newest version,
-- and nothing else here reads rows that another transaction could have committed meanwhile.
--
-- $1 event pks, $2 endpoint ids, $3 lane keys (null = unordered), $4 filtered: the candidates
--    in routing order (filtered: created only if one of its filters passes);
-- $5 candidate numbers (1-based into $1..$4), $6 subscription ids, $7 filter numbers (1-based
--    into $8): one row per (candidate, filter of a subscription that matched it by type);
-- $8 distinct filter texts; $9 safe mode;
-- $10 per candidate, a reason to create it dead rather than deliver it (null: deliver):
--    OUTBOXD_STRICT_EVENT_TYPES and a type not in the catalog. Dead deliveries are not in
--    their lanes (lanes count unfinished work); outbox.retry_dead puts them back.
-- Dead ones still go through the filters: an event the endpoint would not get gets nothing.
-- One row: deliveries created (dead ones too), how many are claimable now, filter errors.
WITH candidates AS MATERIALIZED (
    SELECT c.ord, c.event_pk, c.endpoint_id, c.lane_key, c.filtered, c.dead
      FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bool[], $10::text[])
           WITH ORDINALITY AS c(event_pk, endpoint_id, lane_key, filtered, dead, ord)
),
filters AS MATERIALIZED (
    -- has_vars: the canonical text names every variable as $"name" (a string that merely
    -- contains $" makes it true too, which costs time, never correctness).
    SELECT p.n, p.filter, p.path, position('$"' IN p.path::text) > 0 AS has_vars
      FROM (SELECT f.n::int AS n, f.filter, f.filter::jsonpath AS path
              FROM unnest($8::text[]) WITH ORDINALITY AS f(filter, n)) p
),
checks AS MATERIALIZED (
    SELECT k.candidate, k.subscription_id, ($2::bigint[])[k.candidate] AS endpoint_id,
           e.event_id, e.event_type, f.filter, e.payload, f.path, v.vars,
           CASE WHEN $9::bool THEN outbox.filter_match_safe(e.payload, f.path, v.vars)
                ELSE jsonb_path_match(e.payload, f.path, v.vars, silent => true) END AS matched
      FROM unnest($5::bigint[], $6::bigint[], $7::int[]) AS k(candidate, subscription_id, filter_n)
      JOIN filters f ON f.n = k.filter_n
     CROSS JOIN LATERAL (SELECT e.event_id, e.event_type, e.tenant_id, e.resource_key,
                                e.headers, e.request_id,
                                -- An inbound event (V14): its request's body, if JSON.
                                coalesce(e.payload, outbox.inbound_payload(e.request_id))
                                    AS payload
                           FROM outbox.events e
                          WHERE e.id = ($1::bigint[])[k.candidate]) e
     CROSS JOIN LATERAL (SELECT CASE WHEN f.has_vars
                                     THEN outbox.filter_vars(e.tenant_id, e.event_type,
                                                             e.resource_key,
                                                             coalesce(e.headers,
                                                                      outbox.inbound_headers(e.request_id)))
                                     ELSE '{}'::jsonb END AS vars) v
),
errors AS (
    INSERT INTO outbox.filter_errors (subscription_id, endpoint_id, event_id, event_type, filter,
                                      message)
    SELECT k.subscription_id, k.endpoint_id, k.event_id, k.event_type, k.filter,
           outbox.filter_error_message(k.payload, k.path, k.vars)
      FROM checks k
     WHERE k.matched IS NULL
),
kept AS MATERIALIZED (
    SELECT c.ord, c.event_pk, c.endpoint_id, c.lane_key, c.dead
      FROM candidates c
     WHERE NOT c.filtered
        OR c.ord IN (SELECT k.candidate FROM checks k WHERE k.matched)
),
counts AS MATERIALIZED (
    SELECT k.endpoint_id, k.lane_key, count(*)::int AS n, min(k.ord) AS first
      FROM kept k
     WHERE k.lane_key IS NOT NULL AND k.dead IS NULL
     GROUP BY k.endpoint_id, k.lane_key
),
lanes AS (
    INSERT INTO outbox.lanes AS l (endpoint_id, lane_key, pending)
    SELECT c.endpoint_id, c.lane_key, c.n
      FROM counts c
     ORDER BY c.endpoint_id, c.lane_key
    ON CONFLICT (endpoint_id, lane_key)
    DO UPDATE SET pending = l.pending + excluded.pending, updated_at = now()
    RETURNING l.endpoint_id, l.lane_key, l.pending
),
inserted AS (
    INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, held, state, completed_at,
                                   last_error)
    SELECT k.event_pk, k.endpoint_id, k.lane_key,
           -- pending = n: the lane had nothing in flight before these.
           k.dead IS NULL AND k.lane_key IS NOT NULL
               AND NOT (k.ord = c.first AND l.pending = c.n),
           CASE WHEN k.dead IS NULL THEN 'pending' ELSE 'dead' END,
           CASE WHEN k.dead IS NOT NULL THEN now() END,
           k.dead
      FROM kept k
      LEFT JOIN counts c ON c.endpoint_id = k.endpoint_id AND c.lane_key = k.lane_key
      LEFT JOIN lanes l ON l.endpoint_id = k.endpoint_id AND l.lane_key = k.lane_key
     ORDER BY k.ord
    RETURNING held, state
)
SELECT (SELECT count(*) FROM inserted) AS created,
       (SELECT count(*) FROM inserted i WHERE NOT i.held AND i.state = 'pending') AS ready,
       (SELECT count(*) FROM checks k WHERE k.matched IS NULL) AS errors
