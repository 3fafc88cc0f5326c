//! Maintenance services, each a small loop any replica may run (they coordinate through
//! `SKIP LOCKED`, so running them everywhere is safe):
//! * **lease rescuer**: deliveries leased by a replica that died go back to `pending`;
//! * **stats**: refreshes the backlog gauges for `/metrics`;
//! * **retention** (SPEC §5): deletes succeeded work after `retention_succeeded`, dead work
//!   after `retention_dead`, then events left without deliveries, and idle lanes. Every batch
//!   is its own short transaction under a try-lock (one replica at a time), walking an index
//!   window by window with a cursor, and never touches unrouted events: publishers never wait
//!   for it, and table sizes stay bounded while publishing continues.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use crate::db::Conn;
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
                metrics::counter!("outboxd_leases_rescued_total").increment(n as u64);
                replica.work_ready.notify_one();
            }
            Ok(_) => {}
            Err(e) => {
                metrics::counter!("outboxd_db_errors_total", "task" => "rescuer").increment(1);
                tracing::warn!(error = %e, "lease rescue failed; will retry");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn rescue_once(replica: &Replica) -> Result<usize, crate::db::DbError> {
    let client = replica.db().await?;
    let mut total = 0;
    loop {
        let n = client
            .query(sql::RESCUE_EXPIRED_LEASES, &[&1000i64])
            .await?
            .len();
        total += n;
        if n < 1000 {
            return Ok(total);
        }
    }
}

/// Refreshes the gauges every `interval`.
pub(crate) async fn stats(replica: Arc<Replica>, interval: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(e) = stats_once(&replica).await {
            tracing::debug!(error = %e, "stats query failed");
        }
        let status = replica.pool.status();
        metrics::gauge!("outboxd_db_pool_connections", "state" => "max")
            .set(status.max_size as f64);
        metrics::gauge!("outboxd_db_pool_connections", "state" => "idle")
            .set(status.available as f64);
        metrics::gauge!("outboxd_db_pool_connections", "state" => "in_use")
            .set(status.size.saturating_sub(status.available) as f64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn stats_once(replica: &Replica) -> Result<(), crate::db::DbError> {
    let client = replica.db().await?;
    let row = client.query_one(sql::STATS, &[]).await?;
    metrics::gauge!("outboxd_outbox_lag_seconds").set(row.get::<_, f64>(0));
    metrics::gauge!("outboxd_deliveries_pending").set(row.get::<_, i64>(1) as f64);
    metrics::gauge!("outboxd_deliveries_delivering").set(row.get::<_, i64>(2) as f64);
    metrics::gauge!("outboxd_deliveries_dead").set(row.get::<_, i64>(3) as f64);
    metrics::gauge!("outboxd_oldest_pending_delivery_age_seconds").set(row.get::<_, f64>(4));
    Ok(())
}

/// Rows deleted by one retention pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetentionStats {
    pub deliveries: i64,
    pub attempts: i64,
    pub events: i64,
    pub lanes: u64,
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
                    lanes = s.lanes,
                    "retention deleted old work"
                );
                metrics::counter!("outboxd_retention_deleted_total", "table" => "deliveries")
                    .increment(s.deliveries as u64);
                metrics::counter!("outboxd_retention_deleted_total", "table" => "attempts")
                    .increment(s.attempts as u64);
                metrics::counter!("outboxd_retention_deleted_total", "table" => "events")
                    .increment(s.events as u64);
            }
            Ok(_) => {}
            Err(e) => {
                metrics::counter!("outboxd_db_errors_total", "task" => "retention").increment(1);
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
    Ok(stats)
}
