//! Claiming: lease due deliveries with `FOR UPDATE SKIP LOCKED` (one statement, see
//! `sql/engine/claim.sql`), so any number of replicas share the work without blocking each
//! other. A claim returns everything the worker needs, payload included when it is small;
//! large payloads are fetched by the worker under a memory-bounding semaphore.

use chrono::{DateTime, Utc};

use crate::sql;

/// Uncompressed payloads up to this size come back inline with the claim; larger ones (and
/// compressed ones over 4 KiB, whose text may be 100 times larger) are fetched by the worker,
/// so one claim holds at most `limit` × 256 KiB of payload.
pub const INLINE_PAYLOAD_BYTES: i32 = 256 * 1024;

/// A leased delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The database's clock at the claim, and when (locally) the claim returned: retry
    /// times are computed in database time, so a skewed sidecar clock cannot shift them.
    pub db_now: DateTime<Utc>,
    pub claimed_at: std::time::Instant,
    pub id: i64,
    pub event_pk: i64,
    /// The lease token: the completion only applies while it still matches.
    pub claim_count: i32,
    /// Attempts made before this one.
    pub attempt_count: i32,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
    pub event_id: String,
    pub event_created_at: DateTime<Utc>,
    pub headers: Option<String>,
    /// `None` when the payload is large: fetch it with `sql::FETCH_PAYLOAD`.
    pub body: Option<String>,
}

impl Claimed {
    /// The database's clock now, extrapolated from the claim with the monotonic clock.
    pub fn db_time(&self) -> DateTime<Utc> {
        self.db_now + chrono::Duration::from_std(self.claimed_at.elapsed()).unwrap_or_default()
    }
}

/// What this replica is already doing, so the claim respects per-endpoint limits.
#[derive(Debug, Default)]
pub struct ClaimRequest {
    pub busy_endpoints: Vec<i64>,
    pub busy_counts: Vec<i32>,
    pub excluded_endpoints: Vec<i64>,
    pub limit: i64,
    /// Round-robin position: the claim serves endpoints after this id first.
    pub cursor: i64,
}

/// Leases up to `req.limit` due deliveries for `lease`.
pub async fn claim(
    client: &impl deadpool_postgres::GenericClient,
    req: &ClaimRequest,
    lease: std::time::Duration,
    replica_id: &str,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(sql::CLAIM).await?;
    let rows = client
        .query(
            &stmt,
            &[
                &req.busy_endpoints,
                &req.busy_counts,
                &req.excluded_endpoints,
                &req.limit,
                &lease.as_secs_f64(),
                &replica_id,
                &INLINE_PAYLOAD_BYTES,
                &req.cursor,
            ],
        )
        .await?;
    let claimed_at = std::time::Instant::now();
    Ok(rows
        .iter()
        .map(|r| Claimed {
            db_now: r.get("db_now"),
            claimed_at,
            id: r.get("id"),
            event_pk: r.get("event_pk"),
            claim_count: r.get("claim_count"),
            attempt_count: r.get("attempt_count"),
            endpoint_id: r.get("endpoint_id"),
            lane_key: r.get("lane_key"),
            event_id: r.get("event_id"),
            event_created_at: r.get("event_created_at"),
            headers: r.get("headers"),
            body: r.get("body"),
        })
        .collect())
}

/// The round-robin cursor after a claim: the last endpoint served, in the claim's order
/// (endpoints after the old cursor first, then from the smallest id).
pub fn next_cursor(old: i64, claimed: &[Claimed]) -> i64 {
    claimed
        .iter()
        .map(|c| c.endpoint_id)
        .max_by_key(|&ep| (ep <= old, ep))
        .unwrap_or(old)
}

#[cfg(test)]
mod tests {
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
}
