//! Maintenance services, each a small loop any replica may run (they coordinate through
//! `SKIP LOCKED`, so running them everywhere is safe):
//! * **lease rescuer**: deliveries leased by a replica that died go back to `pending`;
//! * **stats**: refreshes the backlog gauges for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Shared;
use crate::sql;

/// Returns expired leases to pending, in batches, every `interval`.
pub async fn rescue_leases(shared: Arc<Shared>, interval: Duration, shutdown: CancellationToken) {
    loop {
        match rescue_once(&shared).await {
            Ok(n) if n > 0 => {
                tracing::warn!(rescued = n, "returned expired leases to pending");
                metrics::counter!("outboxd_leases_rescued_total").increment(n as u64);
                shared.work_ready.notify_one();
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

async fn rescue_once(shared: &Shared) -> Result<usize, crate::db::DbError> {
    let client = shared.pool.get().await?;
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
pub async fn stats(shared: Arc<Shared>, interval: Duration, shutdown: CancellationToken) {
    loop {
        if let Err(e) = stats_once(&shared).await {
            tracing::debug!(error = %e, "stats query failed");
        }
        let status = shared.pool.status();
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

async fn stats_once(shared: &Shared) -> Result<(), crate::db::DbError> {
    let client = shared.pool.get().await?;
    let row = client.query_one(sql::STATS, &[]).await?;
    metrics::gauge!("outboxd_outbox_lag_seconds").set(row.get::<_, f64>(0));
    metrics::gauge!("outboxd_deliveries_pending").set(row.get::<_, i64>(1) as f64);
    metrics::gauge!("outboxd_deliveries_delivering").set(row.get::<_, i64>(2) as f64);
    metrics::gauge!("outboxd_deliveries_dead").set(row.get::<_, i64>(3) as f64);
    metrics::gauge!("outboxd_oldest_pending_delivery_age_seconds").set(row.get::<_, f64>(4));
    Ok(())
}
