-- Pending (due, waiting for a retry, or held behind an earlier event of their resource) and
-- dead deliveries per endpoint, for /metrics; their sums are outboxd_deliveries_pending and
-- outboxd_deliveries_dead. Each term reads one partial index (deliveries_due, deliveries_held,
-- deliveries_dead), so the cost follows the backlog, not the table.
SELECT endpoint_id, sum(pending)::bigint AS pending, sum(dead)::bigint AS dead
  FROM (SELECT endpoint_id, count(*) AS pending, 0 AS dead
          FROM outbox.deliveries WHERE state = 'pending' AND NOT held GROUP BY endpoint_id
        UNION ALL
        SELECT endpoint_id, count(*), 0
          FROM outbox.deliveries WHERE held GROUP BY endpoint_id
        UNION ALL
        SELECT endpoint_id, 0, count(*)
          FROM outbox.deliveries WHERE state = 'dead' GROUP BY endpoint_id) t
 GROUP BY endpoint_id
