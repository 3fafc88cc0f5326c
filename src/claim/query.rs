//! The claim statement (`sql/engine/claim.sql`): lease due deliveries with
//! `FOR UPDATE SKIP LOCKED`, so any number of replicas share the work without blocking each
//! other. A claim returns everything the worker needs, payload included when it is small
//! (for an event relaying an inbound request: the stored request's body, content type and
//! headers); large payloads are fetched by the worker under a memory-bounding semaphore.

use crate::db::Conn;
use crate::delivery::Claimed;
use crate::sql;

/// What this replica is already doing, so the claim respects per-endpoint limits; built by
/// [`super::policy::claim_request`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ClaimRequest {
    /// Endpoints to treat as busy, with how many of their `max_in_flight` slots are taken.
    pub busy_endpoints: Vec<i64>,
    pub busy_counts: Vec<i32>,
    /// Endpoints not to claim for at all (open circuits, rate limit far ahead).
    pub excluded_endpoints: Vec<i64>,
    pub limit: i64,
    /// Round-robin position: the claim serves endpoints after this id first.
    pub cursor: i64,
}

/// Leases up to `req.limit` due deliveries for `lease`.
pub(crate) async fn claim(
    client: &Conn,
    req: &ClaimRequest,
    lease: std::time::Duration,
    replica_id: &str,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let rows = client
        .query(
            sql::CLAIM,
            &[
                &req.busy_endpoints,
                &req.busy_counts,
                &req.excluded_endpoints,
                &req.limit,
                &lease.as_secs_f64(),
                &replica_id,
                &req.cursor,
            ],
        )
        .await?;
    let claimed_at = std::time::Instant::now();
    Ok(rows
        .iter()
        .map(|r| Claimed::from_row(r, claimed_at))
        .collect())
}

/// The round-robin cursor after a claim: the last endpoint served, in the claim's order
/// (endpoints after the old cursor first, then from the smallest id).
pub(crate) fn next_cursor(old: i64, claimed: &[Claimed]) -> i64 {
    claimed
        .iter()
        .map(|c| c.endpoint_id)
        .max_by_key(|&ep| (ep <= old, ep))
        .unwrap_or(old)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn claimed(endpoint_id: i64) -> Claimed {
        Claimed {
            db_now: Utc::now(),
            claimed_at: std::time::Instant::now(),
            id: 0,
            event_pk: 0,
            claim_count: 1,
            attempt_count: 0,
            endpoint_id,
            lane_key: None,
            event_id: String::new(),
            event_created_at: Utc::now(),
            headers: None,
            body: None,
            request_id: None,
            relayed: None,
        }
    }

    #[test]
    fn cursor_moves_round_robin() {
        let c: Vec<Claimed> = [5, 7, 2].into_iter().map(claimed).collect();
        // After 4: served 5, 7, then wrapped to 2 — the next claim starts after 2.
        assert_eq!(next_cursor(4, &c), 2);
        // After 1: served 2, 5, 7 — the next claim starts after 7.
        assert_eq!(next_cursor(1, &c), 7);
        assert_eq!(next_cursor(3, &[]), 3);
    }

    /// The claim walks endpoints and probes each one's due deliveries: its cost follows the
    /// batch, not the number of due lane heads (an EXISTS here once became a semi-join that
    /// read and hashed every due delivery of every endpoint, on each claim).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_claim_never_reads_every_due_delivery() {
        let db = testkit::fresh_db().await;
        let c = db.client().await;
        c.batch_execute(
            "SELECT outbox.add_endpoint('http://127.0.0.1:9/' || i, '{*}') FROM generate_series(1, 3) i;
             INSERT INTO outbox.events (event_type, payload, routed_at)
               SELECT 'x', '{}', now() FROM generate_series(1, 20000);
             INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, next_attempt_at)
               SELECT ev.id, ep.id, ev.id::text, now() - interval '1 minute'
                 FROM outbox.events ev CROSS JOIN outbox.endpoints ep;
             -- Like a real table: most deliveries are done, a third is due.
             UPDATE outbox.deliveries SET state = 'succeeded', completed_at = now()
              WHERE id % 3 <> 0;
             ANALYZE outbox.events; ANALYZE outbox.deliveries;",
        )
        .await
        .unwrap();
        let req = ClaimRequest {
            limit: 100,
            ..ClaimRequest::default()
        };
        for mode in ["force_custom_plan", "force_generic_plan"] {
            c.batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let rows = c
                .query(
                    &format!("EXPLAIN {}", sql::CLAIM),
                    &[
                        &req.busy_endpoints,
                        &req.busy_counts,
                        &req.excluded_endpoints,
                        &req.limit,
                        &30f64,
                        &"replica",
                        &req.cursor,
                    ],
                )
                .await
                .unwrap();
            let plan: String = rows.iter().map(|r| r.get::<_, String>(0) + "\n").collect();
            for scan in [
                "Seq Scan on deliveries",
                "Bitmap Heap Scan on deliveries",
                "Semi Join",
                "Unique",
            ] {
                assert!(!plan.contains(scan), "{mode}: {scan}\n{plan}");
            }
        }
    }
}
