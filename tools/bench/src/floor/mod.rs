//! The machine's floor, measured on the same machine and cluster as outboxd (scenario 2 reports
//! it; steady reports its ratio to it):
//!
//! * **database floor**: the minimal SQL one delivery needs, batched, run directly by
//!   `--floor-workers` connections against a fresh migrated database (same tables and indexes
//!   as outboxd uses): fan-out (take 400 unrouted events `FOR UPDATE SKIP LOCKED`, insert one
//!   delivery per subscribed endpoint, mark them routed — one statement), claim (256 due
//!   deliveries `FOR UPDATE SKIP LOCKED` → `delivering`, joined with the event for the
//!   payload — one statement), record (mark them succeeded and insert one `outbox.attempts`
//!   row each — one transaction). No HTTP, no lanes. Measured twice: with the producers'
//!   publishing transactions in the loop (the same work the database does during `steady`),
//!   and on pre-published events (delivery SQL alone).
//! * **HTTP floor**: the bench's receiver (signature check, JSON parse, bookkeeping) loaded
//!   by `wrk` with a Lua script POSTing one signed request (if `wrk` is on PATH), else by an
//!   in-process reqwest load generator, 64 connections.
//!
//! The combined floor is `1 / (1/db + 1/http)`: both share the same 2 CPUs, so one delivery
//! costs at least the database's time plus the HTTP exchange's time. [`db`] and [`http`]
//! measure the two.

mod db;
mod http;

use serde::Serialize;

use crate::ctx::Ctx;
use db::db_floor;
use http::http_floor;

#[derive(Debug, Clone, Serialize)]
pub struct DbFloor {
    pub with_publish: bool,
    pub deliveries_per_second: f64,
    pub events_per_second: f64,
    pub seconds: f64,
    pub deliveries: u64,
    pub postgres_cpu_ms_per_1000: Option<f64>,
    pub wal_bytes_per_delivery: f64,
    pub rows_per_delivery: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpFloor {
    pub tool: String,
    pub requests_per_second: f64,
    pub seconds: f64,
    pub connections: usize,
    pub bad_signatures: u64,
    pub errors: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    pub db: DbFloor,
    pub db_delivery_only: Option<DbFloor>,
    pub http: HttpFloor,
    /// 1 / (1/db + 1/http), with the database floor that includes publishing.
    pub combined: f64,
}

/// Both database floors, then the HTTP floor, each printed as it is measured.
pub async fn measure_floor(ctx: &Ctx) -> anyhow::Result<FloorResult> {
    let secs = ctx.smoke_or(2, ctx.opts.floor_seconds.max(1));
    let warm = ctx.smoke_or(1, 2);
    let db = db_floor(ctx, true, secs, warm, 0).await?;
    println!(
        "  floor: database (publishing included) {:.0} deliveries/s",
        db.deliveries_per_second
    );
    // Enough pre-published events for the delivery-only run at up to twice that rate.
    let events = ((db.deliveries_per_second * (secs + warm) as f64 * 2.0 / 2.5) as u64)
        .clamp(2_000, 3_000_000);
    let db_only = db_floor(ctx, false, secs, warm, events).await?;
    println!(
        "  floor: database (delivery SQL only) {:.0} deliveries/s",
        db_only.deliveries_per_second
    );
    let http = http_floor(ctx, secs).await?;
    println!(
        "  floor: receiver {:.0} requests/s ({})",
        http.requests_per_second, http.tool
    );
    let combined = combined(db.deliveries_per_second, http.requests_per_second);
    Ok(FloorResult {
        db,
        db_delivery_only: Some(db_only),
        http,
        combined,
    })
}

/// The combined floor of a database and an HTTP rate sharing the machine's CPUs: one delivery
/// costs at least the database's time plus the HTTP exchange's.
fn combined(db_per_second: f64, http_per_second: f64) -> f64 {
    1.0 / (1.0 / db_per_second + 1.0 / http_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combined_floor_adds_the_time_of_both_halves() {
        assert_eq!(combined(1000.0, 1000.0), 500.0);
        assert!((combined(30_000.0, 60_000.0) - 20_000.0).abs() < 1e-9);
    }
}
