//! Scenario 10, replicas: the steady workload through 2 sidecar replicas against 1, on the one
//! database at the same settings (issue 16: "2 replicas on the one database deliver at least as
//! much as 1"). The runs alternate 1, 2, 1, 2, each on a fresh database, so a drift of the
//! machine during the scenario lands on both sides; each side's figure is the mean of its
//! runs, so one lucky run cannot carry the verdict.

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::producers::Workload;
use crate::report::{ScenarioReport, fmt_int};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunResult, RunSpec, check_run, measure};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let (events, keys, endpoints) = if ctx.smoke {
        (1_000, 200, o.endpoints.min(10))
    } else {
        (o.replica_events as usize, o.keys, o.endpoints)
    };
    let order: &[u32] = ctx.smoke_or(&[1, 2], &[1, 2, 1, 2]);
    let mut r = ScenarioReport::new(
        "replicas",
        &format!(
            "10. replicas: {} events through 1 and through 2 sidecar replicas on one database, runs alternating {}",
            fmt_int(events as f64),
            order
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let w = Arc::new(Workload::uniform(events, keys, o.payload_bytes));
    let mut runs: Vec<(u32, RunResult)> = Vec::new();
    for (i, &replicas) in order.iter().enumerate() {
        let label = format!("replicas-{replicas}-run{}", i + 1);
        let db = ctx.cluster.fresh_db(&label, keys).await?;
        let mut specs = standard_endpoints(endpoints, 0);
        let mut spec = RunSpec::saturating(ctx, &label, events, w.clone());
        spec.replicas = replicas;
        let x = measure(ctx, &db, &mut specs, spec).await?;
        db.cleanup().await;
        println!(
            "  replicas: {replicas} replica(s), run {}: {:.0} deliveries/s",
            i + 1,
            x.deliveries_per_second
        );
        check_run(&mut r, &x);
        runs.push((replicas, x));
    }
    let mean = |n: u32| {
        let rates: Vec<f64> = runs
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, x)| x.deliveries_per_second)
            .collect();
        rates.iter().sum::<f64>() / rates.len().max(1) as f64
    };
    let (one, two) = (mean(1), mean(2));
    let ratio = two / one.max(f64::MIN_POSITIVE);
    r.target(
        "2 replicas against 1 (deliveries/s, mean of each side's runs)",
        format!("{} against {} /s = {ratio:.2}×", fmt_int(two), fmt_int(one)),
        "≥ 1×",
        Some(ratio >= 1.0),
    );
    for (i, (replicas, x)) in runs.iter().enumerate() {
        let per = |cpu: f64| cpu * 1e6 / x.deliveries_received.max(1) as f64;
        r.row(
            format!("run {}: {replicas} replica(s)", i + 1),
            format!(
                "{} /s; PostgreSQL {} µs, sidecars {:.0} µs per delivery; lost {}, order violations {}",
                fmt_int(x.deliveries_per_second),
                x.postgres_cpu_seconds
                    .map_or("-".to_owned(), |pg| format!("{:.0}", per(pg))),
                per(x.sidecar.cpu_seconds),
                x.lost,
                x.receiver.order_violations
            ),
        );
    }
    r.detail("runs", &runs);
    r.detail("ratio", ratio);
    Ok(r)
}
