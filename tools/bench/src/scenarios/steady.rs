//! Scenario 1, steady throughput: the standard endpoint layout saturated by the producers,
//! next to the machine's floor (measured here unless the floor scenario ran first).

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::floor::{FloorResult, measure_floor};
use crate::producers::Workload;
use crate::report::{ScenarioReport, fmt_int, fmt_ms};
use crate::run::db::{reset_statements, top_statements};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunSpec, check_run, measure, run_rows};

/// The report and its summary line (`deliveries_per_second=… p50_ms=… p99_ms=…`). `floor` is the
/// floor scenario's result when it ran first; otherwise it is measured here (unless
/// `--no-floor`).
pub async fn scenario(
    ctx: &Ctx,
    floor: Option<FloorResult>,
) -> anyhow::Result<(ScenarioReport, String)> {
    let o = &ctx.opts;
    let (events, keys, endpoints) = if ctx.smoke {
        (3_000, 500, o.endpoints.min(10))
    } else {
        (o.events, o.keys, o.endpoints)
    };
    let mut r = ScenarioReport::new(
        "steady",
        &format!(
            "1. steady throughput: {} events, {} keys, {} endpoints (fan-out 2.5), {} producers × {} events/tx",
            fmt_int(events as f64),
            fmt_int(keys as f64),
            endpoints,
            o.producers,
            o.batch
        ),
    );
    let db = ctx.cluster.fresh_db("steady", keys).await?;
    reset_statements(ctx, &db).await;
    let w = Arc::new(Workload::uniform(
        events as usize,
        keys,
        ctx.opts.payload_bytes,
    ));
    let mut specs = standard_endpoints(endpoints, 0);
    let spec = RunSpec::saturating(ctx, "steady", events as usize, w);
    let x = measure(ctx, &db, &mut specs, spec).await?;
    top_statements(ctx, &db, &mut r, "pg_stat_statements").await;
    db.cleanup().await;

    let floor = match floor {
        Some(f) => Some(f),
        None if ctx.opts.no_floor => None,
        None => Some(measure_floor(ctx).await?),
    };

    r.target(
        "deliveries/s sustained (middle 80 %)",
        fmt_int(x.deliveries_per_second),
        "≥ 10 000",
        Some(x.deliveries_per_second >= 10_000.0),
    );
    if let Some(f) = &floor {
        let ratio = x.deliveries_per_second / f.combined;
        let (lo, hi) = f.combined_range();
        let spread = if f.db_rounds.len() > 1 {
            format!(
                " ({:.0}–{:.0} % over the floor's {} rounds)",
                x.deliveries_per_second / hi * 100.0,
                x.deliveries_per_second / lo * 100.0,
                f.db_rounds.len()
            )
        } else {
            String::new()
        };
        let short = format!("{:.0} % of {}{spread}", ratio * 100.0, fmt_int(f.combined));
        match f.combined_at_size() {
            // The like-for-like denominator: the floor's SQL over as many events as this run,
            // measured over its middle 80 % too (crate::floor, "At the run's size").
            Some(at_size) => {
                let r_at_size = x.deliveries_per_second / at_size;
                r.target(
                    format!(
                        "ratio to the combined floor at the run's size ({} events, middle 80 %)",
                        fmt_int(f.events_at_size as f64)
                    ),
                    format!("{:.0} % of {}", r_at_size * 100.0, fmt_int(at_size)),
                    "≥ 50 %",
                    Some(r_at_size >= 0.5),
                );
                r.row(
                    "ratio to the combined floor of 10-second rounds on fresh tables",
                    short,
                );
                r.detail("ratio_to_floor_at_size", r_at_size);
            }
            None => r.target(
                "ratio to the combined floor",
                short,
                "≥ 50 %",
                Some(ratio >= 0.5),
            ),
        }
        r.detail("floor", f);
        r.detail("ratio_to_floor", ratio);
    } else {
        r.target("ratio to the combined floor", "-", "≥ 50 %", None);
    }
    r.target(
        "sidecar peak RSS (VmHWM)",
        format!("{:.1} MB", x.sidecar.peak_rss_mb),
        "< 100 MB",
        Some(x.sidecar.peak_rss_mb < 100.0),
    );
    run_rows(&mut r, &x);
    r.row(
        "order violations / duplicates / bad signatures / lost",
        format!(
            "{} / {} / {} / {}",
            x.receiver.order_violations, x.receiver.duplicates, x.receiver.bad_signatures, x.lost
        ),
    );
    r.note(format!(
        "producers pause while > {} deliveries are outstanding, so latency here is queueing under saturation; low-load latency is scenario 4",
        ctx.opts.max_backlog
    ));
    check_run(&mut r, &x);
    r.detail("run", &x);
    let line = format!(
        "deliveries_per_second={:.0} p50_ms={} p99_ms={}",
        x.deliveries_per_second,
        fmt_ms(x.latency.p50_ms),
        fmt_ms(x.latency.p99_ms)
    );
    r.detail("summary_line", &line);
    Ok((r, line))
}
