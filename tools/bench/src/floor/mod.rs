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
//!
//! **Rounds.** At durable settings one 10-second database floor moved by 23 % between two
//! `all` runs of one evening while outboxd's 10-minute figure moved by 0.5 % (BENCHMARKS.md,
//! "The floor's noise"), so a ratio to one round could not decide a 50 % bar. The database
//! floor with publishing is therefore measured `--floor-rounds` times (default 3), each on a
//! fresh database; the floor is the median round, and the rounds' range is reported with it
//! (and with the ratio steady computes), so the reader sees how far the verdict can be trusted.
//!
//! **At the run's size.** The rounds run 10 seconds on fresh tables, while steady's figure is
//! the middle 80 % of a run that publishes `--events` (1 M) events and grows the tables to
//! 2.5 M deliveries, with the autovacuum and checkpoints that brings. One more round does the
//! floor's SQL on that many events (`--floor-events`, default `--events`) and measures its
//! middle 80 % the same way: the like-for-like denominator. Steady reports its ratio to both.

mod db;
mod http;

use serde::Serialize;

use crate::ctx::Ctx;
use db::{Window, db_floor};
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
    /// The median round of the database floor with publishing.
    pub db: DbFloor,
    /// Every round's deliveries/s, in the order measured (the median is `db`'s).
    pub db_rounds: Vec<f64>,
    pub db_delivery_only: Option<DbFloor>,
    /// The database floor with publishing at the run's size (`--floor-events` events, middle
    /// 80 %), when measured.
    pub db_at_size: Option<DbFloor>,
    /// Events of that round.
    pub events_at_size: u64,
    pub http: HttpFloor,
    /// 1 / (1/db + 1/http), with the database floor that includes publishing.
    pub combined: f64,
}

/// Both database floors, then the HTTP floor, each printed as it is measured.
pub async fn measure_floor(ctx: &Ctx) -> anyhow::Result<FloorResult> {
    let secs = ctx.smoke_or(2, ctx.opts.floor_seconds.max(1));
    let warm = ctx.smoke_or(1, 2);
    let short = Window::Seconds { warm, secs };
    let rounds = ctx.smoke_or(1, ctx.opts.floor_rounds.max(1));
    let mut measured = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let db = db_floor(ctx, true, short, 0).await?;
        println!(
            "  floor: database (publishing included), round {round} of {rounds}: {:.0} deliveries/s",
            db.deliveries_per_second
        );
        measured.push(db);
    }
    let db_rounds: Vec<f64> = measured.iter().map(|d| d.deliveries_per_second).collect();
    let db = median_round(measured);
    // Enough pre-published events for the delivery-only run at up to twice that rate.
    let events = ((db.deliveries_per_second * (secs + warm) as f64 * 2.0 / 2.5) as u64)
        .clamp(2_000, 3_000_000);
    let db_only = db_floor(ctx, false, short, events).await?;
    println!(
        "  floor: database (delivery SQL only) {:.0} deliveries/s",
        db_only.deliveries_per_second
    );
    let events_at_size = ctx.smoke_or(3_000, ctx.opts.floor_events.unwrap_or(ctx.opts.events));
    let db_at_size = if events_at_size > 0 {
        let db = db_floor(ctx, true, Window::Events(events_at_size), 0).await?;
        println!(
            "  floor: database (publishing included) at the run's size, {events_at_size} events, middle 80 %: {:.0} deliveries/s",
            db.deliveries_per_second
        );
        Some(db)
    } else {
        None
    };
    let http = http_floor(ctx, secs).await?;
    println!(
        "  floor: receiver {:.0} requests/s ({})",
        http.requests_per_second, http.tool
    );
    let combined = combined(db.deliveries_per_second, http.requests_per_second);
    Ok(FloorResult {
        db,
        db_rounds,
        db_delivery_only: Some(db_only),
        db_at_size,
        events_at_size,
        http,
        combined,
    })
}

impl FloorResult {
    /// The combined floor with the database floor at the run's size, when measured.
    pub fn combined_at_size(&self) -> Option<f64> {
        self.db_at_size
            .as_ref()
            .map(|d| combined(d.deliveries_per_second, self.http.requests_per_second))
    }

    /// The combined floor with the slowest and with the fastest database round: the range the
    /// floor's own noise spans.
    pub fn combined_range(&self) -> (f64, f64) {
        let http = self.http.requests_per_second;
        let (lo, hi) = self
            .db_rounds
            .iter()
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &r| {
                (lo.min(r), hi.max(r))
            });
        (combined(lo, http), combined(hi, http))
    }
}

/// The round with the median throughput (the upper one of an even count).
fn median_round(mut rounds: Vec<DbFloor>) -> DbFloor {
    rounds.sort_by(|a, b| a.deliveries_per_second.total_cmp(&b.deliveries_per_second));
    let mid = rounds.len() / 2;
    rounds.swap_remove(mid)
}

/// The combined floor of a database and an HTTP rate sharing the machine's CPUs: one delivery
/// costs at least the database's time plus the HTTP exchange's.
fn combined(db_per_second: f64, http_per_second: f64) -> f64 {
    1.0 / (1.0 / db_per_second + 1.0 / http_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(per_second: f64) -> DbFloor {
        DbFloor {
            with_publish: true,
            deliveries_per_second: per_second,
            events_per_second: per_second / 2.5,
            seconds: 10.0,
            deliveries: 0,
            postgres_cpu_ms_per_1000: None,
            wal_bytes_per_delivery: 0.0,
            rows_per_delivery: 0.0,
        }
    }

    #[test]
    fn the_floor_is_the_median_round_and_its_range_spans_the_others() {
        let median = median_round(vec![round(12_000.0), round(9_000.0), round(10_000.0)]);
        assert_eq!(median.deliveries_per_second, 10_000.0);
        assert_eq!(median_round(vec![round(7.0)]).deliveries_per_second, 7.0);
        let f = FloorResult {
            db: median,
            db_rounds: vec![12_000.0, 9_000.0, 10_000.0],
            db_delivery_only: None,
            db_at_size: None,
            events_at_size: 0,
            http: HttpFloor {
                tool: "wrk".into(),
                requests_per_second: 36_000.0,
                seconds: 10.0,
                connections: 64,
                bad_signatures: 0,
                errors: 0,
                detail: String::new(),
            },
            combined: combined(10_000.0, 36_000.0),
        };
        let (lo, hi) = f.combined_range();
        assert!((lo - combined(9_000.0, 36_000.0)).abs() < 1e-9);
        assert!((hi - combined(12_000.0, 36_000.0)).abs() < 1e-9);
        assert!(lo < f.combined && f.combined < hi);
    }

    #[test]
    fn the_combined_floor_adds_the_time_of_both_halves() {
        assert_eq!(combined(1000.0, 1000.0), 500.0);
        assert!((combined(30_000.0, 60_000.0) - 20_000.0).abs() < 1e-9);
    }
}
