//! Scenario 4, latency at low load: one event per transaction at a fixed rate, commit → receive,
//! and where the time goes (the database's timestamps).

use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::producers::{Pace, Workload};
use crate::report::{ScenarioReport, fmt_int, fmt_ms};
use crate::run::db::{db_timing, max_ids};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunSpec, check_run, measure};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let (rate, secs) = (ctx.opts.rate, ctx.smoke_or(3, ctx.opts.seconds));
    let events = (rate * secs as f64).round().max(1.0) as usize;
    let mut r = ScenarioReport::new(
        "latency",
        &format!(
            "4. latency at low load: {rate} events/s for {secs} s, one event per transaction, 10 endpoints"
        ),
    );
    let db = ctx.cluster.fresh_db("latency", 1000).await?;
    let (ev0, del0) = max_ids(&db).await?;
    let w = Arc::new(Workload::uniform(events, 1000, ctx.opts.payload_bytes));
    let mut specs = standard_endpoints(10, 0);
    let x = measure(
        ctx,
        &db,
        &mut specs,
        RunSpec {
            producers: 1,
            batch: 1,
            pace: Pace::Rate { per_sec: rate },
            idle_before: Duration::from_secs(1),
            ..RunSpec::saturating(ctx, "latency", events, w)
        },
    )
    .await?;
    let timing = db_timing(&db, ev0, del0).await?;
    db.cleanup().await;
    r.target(
        "p50 commit → receive",
        format!("{} ms", fmt_ms(x.latency.p50_ms)),
        "< 10 ms",
        Some(x.latency.p50_ms < 10.0),
    );
    r.target(
        "p99 commit → receive",
        format!("{} ms", fmt_ms(x.latency.p99_ms)),
        "< 50 ms",
        Some(x.latency.p99_ms < 50.0),
    );
    r.row("max", format!("{} ms", fmt_ms(x.latency.max_ms)));
    r.row(
        "  of which: event tx start → routing tx start p50/p99",
        timing.route_text(),
    );
    r.row(
        "  of which: routing tx start → HTTP attempt start p50/p99",
        timing.claim_text(),
    );
    r.detail("db_timing", &timing);
    r.row("deliveries", fmt_int(x.deliveries_received as f64));
    r.row(
        "sidecar CPU (cores) idle / at this rate",
        format!("{:.3} / {:.3}", x.idle_cores, x.sidecar_cores),
    );
    r.row(
        "sidecar peak RSS",
        format!("{:.1} MB", x.sidecar.peak_rss_mb),
    );
    check_run(&mut r, &x);
    r.detail("run", &x);
    Ok(r)
}
