-- Events of a list of types ($6: an exact type, or the types seen that a pattern matches),
-- newest first: one backwards scan of events_event_type per type, each stopping after $2
-- rows, merged. (event_type = ANY(...) on one scan would return rows out of id order and
-- sort every event of those types.) $2 rows; the rest: search_filter.sql.
SELECT x.id, x.event_id, x.event_type, x.resource_key, x.tenant_id, x.created_at
  FROM unnest($6::text[]) AS t(event_type)
 CROSS JOIN LATERAL (
        SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
          FROM outbox.events ev
         WHERE ev.event_type = t.event_type AND /*filter*/
         ORDER BY ev.id DESC
         LIMIT $2) x
 ORDER BY x.id DESC
 LIMIT $2
