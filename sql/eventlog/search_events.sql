-- Events newest first, straight from outbox.events: the planner picks the index the filters
-- allow (events_event_id, events_resource_key, events_tenant, or the primary key backwards
-- when nothing narrows the search). $2 rows; the rest: search_filter.sql.
SELECT ev.id, ev.event_id, ev.event_type, ev.resource_key, ev.tenant_id, ev.created_at
  FROM outbox.events ev
 WHERE /*filter*/
 ORDER BY ev.id DESC
 LIMIT $2
