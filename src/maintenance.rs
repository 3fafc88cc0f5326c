//! Maintenance services, each a small loop any replica may run (they coordinate through
//! `SKIP LOCKED`, a lock or a lease, so running them everywhere is safe):
//! * **lease rescuer**: deliveries leased by a replica that died go back to `pending`;
//! * **stats**: the replica holding the stats lease (`outbox.leaders`) refreshes the
//!   database-wide gauges of `/metrics`; the others leave them out;
//! * **retention** (SPEC §5): deletes succeeded work after `retention_succeeded`, dead work
//!   after `retention_dead` (and filter errors with them), then events left without
//!   deliveries, idle lanes, and stored inbound requests after `OUTBOXD_INBOUND_RETENTION`
//!   that no kept event relays. Every batch is its own short transaction under a try-lock
//!   (one replica at a time), walking an index window by window with a cursor, and never
//!   touches unrouted events: publishers never wait for it, and table sizes stay bounded
//!   while publishing continues.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use crate::db::Conn;
use crate::metrics::database::{Backlog, DatabaseStats};
use crate::metrics::names;
use crate::replica::Replica;
use crate::sql;

/// Returns expired leases to pending, in batches, every `interval`.
pub(crate) async fn rescue_leases(
    replica: Arc<Replica>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match rescue_once(&replica).await {
            Ok(n) if n > 0 => {
                tracing::warn!(rescued = n, "returned expired leases to pending");
                metrics::counter!(names::LEASES_RESCUED).increment(n as u64);
                replica.work_ready.notify_one();
            }
            Ok(_) => {}
            Err(e) => {
                crate::metrics::db_error("rescuer");
                tracing::warn!(error = %e, "lease rescue failed; will retry");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Settings of the rescue's transaction: its statement walks the 'delivering' range of
/// `deliveries_status` with a plain index scan, which marks the entries of finished deliveries
/// dead as it passes them; a bitmap scan (what the planner picks on a small table) never does,
/// and they would pile up between vacuums in the range every rescue reads. A `SELECT` rather
/// than `SET LOCAL`: behind a transaction-mode pooler every statement is described with a
/// SQL `PREPARE` first (`db::conn`), which takes no `SET` (the chaos soak behind PgBouncer
/// caught it: no lease was rescued).
const RESCUE_SETTINGS: &str = "SELECT set_config('enable_bitmapscan', 'off', true)";

async fn rescue_once(replica: &Replica) -> Result<usize, crate::db::DbError> {
    let mut client = replica.db().await?;
    let mut total = 0;
    loop {
        let tx = client.transaction().await?;
        tx.query(RESCUE_SETTINGS, &[]).await?;
        let n = tx
            .query(sql::RESCUE_EXPIRED_LEASES, &[&1000i64])
            .await?
            .len();
        tx.commit().await?;
        total += n;
        if n < 1000 {
            return Ok(total);
        }
    }
}

/// The stats service: every `stats_interval`, takes or renews the stats lease and, while this
/// replica holds it, refreshes the database-wide gauges ([`crate::metrics::database`]). Only the
/// holder exports them, so `sum()` over replicas is right; a failed refresh drops them (no
/// frozen values). At shutdown the lease is given back so another replica takes over at once.
/// A refresh that takes long (the per-endpoint counts walk the whole backlog) spaces the next
/// ones out ([`stats_pause`]), and the lease and the figures' validity follow the pause.
pub(crate) async fn stats(replica: Arc<Replica>, shutdown: CancellationToken) {
    let interval = replica.config.stats_interval;
    let mut pause = interval;
    loop {
        let started = std::time::Instant::now();
        match stats_once(&replica, pause).await {
            Ok(Some(figures)) => {
                pause = stats_pause(interval, started.elapsed());
                replica.stats().refreshed(
                    figures,
                    std::time::Instant::now(),
                    chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
                    pause * 2,
                );
            }
            Ok(None) => replica.stats().not_leader(),
            Err(e) => {
                replica.stats().failed();
                crate::metrics::db_error("stats");
                tracing::debug!(error = %e, "stats refresh failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    if replica.stats().is_leader() {
        let release = async {
            let client = replica.db().await?;
            client
                .execute(sql::STATS_RELEASE, &[&replica.config.replica_id])
                .await?;
            Ok::<_, crate::db::DbError>(())
        };
        if let Err(e) = release.await {
            tracing::debug!(error = %e, "could not give the stats lease back; it expires");
        }
    }
}

/// The gauges' queries may use this share of one database core at most: a refresh that took
/// `t` is followed by a pause of at least `t × STATS_BUDGET`.
const STATS_BUDGET: u32 = 20;
/// ... but never more than this (`OutboxdStatsStale` fires when no refresh succeeded for two
/// minutes).
const STATS_MAX_PAUSE: Duration = Duration::from_secs(60);

/// The pause before the next stats refresh: `OUTBOXD_STATS_INTERVAL`, or 20 times what the last
/// refresh took when that is longer (at most a minute), so the gauges cost at most about 5 % of
/// one database core whatever the backlog. With 10 M pending deliveries the per-endpoint counts
/// take about a second; every 10 s they would take a tenth of a core (issue 16, "Growth").
pub(crate) fn stats_pause(interval: Duration, took: Duration) -> Duration {
    interval.max(took.saturating_mul(STATS_BUDGET).min(STATS_MAX_PAUSE))
}

/// Takes or renews the lease (three pauses long) and, when held, reads the figures (without
/// parallel workers, like every engine statement: `Connector::pool`).
async fn stats_once(
    replica: &Replica,
    pause: Duration,
) -> Result<Option<DatabaseStats>, crate::db::DbError> {
    let client = replica.db().await?;
    let lease = (pause * 3).as_secs_f64();
    let held = client
        .query_opt(sql::STATS_LEASE, &[&replica.config.replica_id, &lease])
        .await?;
    if held.is_none() {
        return Ok(None);
    }
    let row = client.query_one(sql::STATS, &[]).await?;
    let by_endpoint = client
        .query(sql::STATS_ENDPOINTS, &[])
        .await?
        .iter()
        .map(|r| Backlog {
            endpoint_id: r.get(0),
            pending: r.get(1),
            dead: r.get(2),
        })
        .collect();
    Ok(Some(DatabaseStats {
        outbox_lag_seconds: row.get(0),
        delivering: row.get(1),
        oldest_pending_age_seconds: row.get(2),
        by_endpoint,
    }))
}

/// Rows deleted by one retention pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetentionStats {
    pub deliveries: i64,
    pub attempts: i64,
    pub events: i64,
    pub filter_errors: u64,
    pub lanes: u64,
    pub inbound_requests: i64,
}

/// Window of index entries one retention statement looks at.
const RETENTION_WINDOW: i64 = 5000;

/// Runs one retention statement in its own short transaction under the retention try-lock;
/// `None` when another replica holds the lock.
async fn locked_batch(
    client: &mut Conn,
    query: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, crate::db::DbError> {
    let tx = client.transaction().await?;
    if !tx
        .query_one(sql::RETENTION_LOCK, &[&crate::locks::RETENTION])
        .await?
        .get::<_, bool>(0)
    {
        return Ok(None);
    }
    let row = tx.query_one(query, params).await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// Runs retention every `interval`.
pub(crate) async fn retention(replica: Arc<Replica>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(replica.config.retention_interval) => {}
        }
        match retention_pass(&replica, &shutdown).await {
            Ok(s) if s != RetentionStats::default() => {
                tracing::info!(
                    deliveries = s.deliveries,
                    attempts = s.attempts,
                    events = s.events,
                    filter_errors = s.filter_errors,
                    lanes = s.lanes,
                    inbound_requests = s.inbound_requests,
                    "retention deleted old work"
                );
                for (table, n) in [
                    ("deliveries", s.deliveries as u64),
                    ("attempts", s.attempts as u64),
                    ("events", s.events as u64),
                    ("filter_errors", s.filter_errors),
                    ("inbound_requests", s.inbound_requests as u64),
                ] {
                    metrics::counter!(names::RETENTION_DELETED, "table" => table).increment(n);
                }
            }
            Ok(_) => {}
            Err(e) => {
                crate::metrics::db_error("retention");
                tracing::warn!(error = %e, "retention failed; will retry");
            }
        }
    }
}

/// One full retention pass: loops over windows until each kind of old work is gone (or
/// another replica holds the retention lock, or shutdown).
pub(crate) async fn retention_pass(
    replica: &Replica,
    shutdown: &CancellationToken,
) -> Result<RetentionStats, crate::db::DbError> {
    let mut client = replica.db().await?;
    let mut stats = RetentionStats::default();
    let succeeded_secs = replica.config.retention_succeeded.as_secs_f64();
    let dead_secs = replica.config.retention_dead.as_secs_f64();
    let boundary: i64 = client
        .query_one(sql::RETENTION_BOUNDARY, &[&succeeded_secs])
        .await?
        .get(0);

    // Succeeded deliveries (and attempts) of events before the boundary.
    let mut cursor = 0i64;
    while !shutdown.is_cancelled() {
        let params: [&(dyn ToSql + Sync); 3] = [&cursor, &boundary, &RETENTION_WINDOW];
        let Some(row) = locked_batch(&mut client, sql::RETENTION_SUCCEEDED, &params).await? else {
            return Ok(stats);
        };
        stats.deliveries += row.get::<_, i64>(1);
        stats.attempts += row.get::<_, i64>(2);
        match row.get::<_, Option<i64>>(0) {
            Some(c) => cursor = c,
            None => break,
        }
    }
    // Dead deliveries past their own retention.
    while !shutdown.is_cancelled() {
        let params: [&(dyn ToSql + Sync); 2] = [&dead_secs, &RETENTION_WINDOW];
        let Some(row) = locked_batch(&mut client, sql::RETENTION_DEAD, &params).await? else {
            return Ok(stats);
        };
        let n: i64 = row.get(0);
        stats.deliveries += n;
        stats.attempts += row.get::<_, i64>(1);
        if n < RETENTION_WINDOW {
            break;
        }
    }
    // Events with no deliveries left.
    let mut cursor = 0i64;
    while !shutdown.is_cancelled() {
        let params: [&(dyn ToSql + Sync); 3] = [&cursor, &boundary, &RETENTION_WINDOW];
        let Some(row) = locked_batch(&mut client, sql::RETENTION_EVENTS, &params).await? else {
            return Ok(stats);
        };
        stats.events += row.get::<_, i64>(1);
        match row.get::<_, Option<i64>>(0) {
            Some(c) => cursor = c,
            None => break,
        }
    }
    // Filter errors past the dead-work retention.
    while !shutdown.is_cancelled() {
        let n = client
            .execute(
                sql::RETENTION_FILTER_ERRORS,
                &[&dead_secs, &RETENTION_WINDOW],
            )
            .await?;
        stats.filter_errors += n;
        if n < RETENTION_WINDOW as u64 {
            break;
        }
    }
    // Idle lanes.
    loop {
        let n = client
            .execute(sql::RETENTION_LANES, &[&RETENTION_WINDOW])
            .await?;
        stats.lanes += n;
        if n < RETENTION_WINDOW as u64 || shutdown.is_cancelled() {
            break;
        }
    }
    // Stored inbound requests past their own retention that no kept event relays.
    let inbound_secs = replica.config.inbound.retention.as_secs_f64();
    let mut cursor = 0i64;
    while !shutdown.is_cancelled() {
        let params: [&(dyn ToSql + Sync); 3] = [&cursor, &inbound_secs, &RETENTION_WINDOW];
        let Some(row) = locked_batch(&mut client, sql::RETENTION_INBOUND, &params).await? else {
            return Ok(stats);
        };
        stats.inbound_requests += row.get::<_, i64>(2);
        match row.get::<_, Option<i64>>(0) {
            Some(c) if row.get::<_, i64>(1) == 0 => cursor = c,
            _ => break,
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rescue finds expired leases in the 'delivering' range of `deliveries_status` with a
    /// plain index scan, planned on an empty database (generic and custom plans alike): no
    /// sequential scan of the deliveries, no bitmap scan that would leave dead entries behind.
    #[tokio::test]
    async fn the_rescue_walks_the_in_flight_range_with_a_plain_index_scan() {
        let db = testkit::fresh_db().await;
        let mut c = db.client().await;
        let tx = c.transaction().await.unwrap();
        tx.batch_execute(RESCUE_SETTINGS).await.unwrap();
        tx.batch_execute(&format!(
            "PREPARE rescue(bigint) AS {}",
            sql::RESCUE_EXPIRED_LEASES
        ))
        .await
        .unwrap();
        for mode in ["force_generic_plan", "force_custom_plan"] {
            tx.batch_execute(&format!("SET LOCAL plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let plan: String = tx
                .query("EXPLAIN (COSTS OFF) EXECUTE rescue(1000)", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0) + "\n")
                .collect();
            assert!(
                plan.contains("Index Scan using deliveries_status"),
                "{mode}:\n{plan}"
            );
            for scan in ["Seq Scan", "Bitmap"] {
                assert!(!plan.contains(scan), "{mode}: {scan}\n{plan}");
            }
        }
    }

    #[test]
    fn a_slow_stats_refresh_spaces_the_next_ones_out_up_to_a_minute() {
        let ten = Duration::from_secs(10);
        // Quick: the configured interval.
        assert_eq!(stats_pause(ten, Duration::from_millis(4)), ten);
        // 1.5 s (10 M pending deliveries): 30 s, so at most 5 % of the time.
        assert_eq!(
            stats_pause(ten, Duration::from_millis(1500)),
            Duration::from_secs(30)
        );
        // Very slow: at most a minute, inside OutboxdStatsStale's two.
        assert_eq!(
            stats_pause(ten, Duration::from_secs(30)),
            Duration::from_secs(60)
        );
        // A configured interval above the budget stays as it is.
        assert_eq!(
            stats_pause(Duration::from_secs(300), Duration::from_secs(30)),
            Duration::from_secs(300)
        );
    }
}
