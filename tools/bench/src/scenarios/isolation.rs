//! Scenario 5, isolation: healthy endpoints alone vs next to a hanging and a failing one (part
//! A, here), and a tenant's burst vs a quiet tenant (part B, [`burst`]).

mod burst;

use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::producers::Workload;
use crate::receiver::{Behaviour, EndpointSpec};
use crate::report::{ScenarioReport, fmt_int};
use crate::run::endpoints::{EVERY_TYPE, endpoint};
use crate::run::{RunResult, RunSpec, check_run, measure};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = ctx.smoke_or(400, ctx.opts.isolation_events) as usize;
    let burst = ctx.smoke_or(3000, ctx.opts.burst) as usize;
    let mut r = ScenarioReport::new(
        "isolation",
        &format!(
            "5. isolation: 8 healthy endpoints alone vs next to a hanging (timeout 2 s) and a failing (500) one, {} events; tenant burst of {} events vs a quiet tenant at {}/s",
            fmt_int(events as f64),
            fmt_int(burst as f64),
            ctx.opts.quiet_rate
        ),
    );

    // A: alone, then with bad neighbours.
    let alone = neighbours_run(ctx, events, false).await?;
    let with = neighbours_run(ctx, events, true).await?;
    neighbours_rows(&mut r, &alone, &with, ctx.smoke);

    // B: tenant burst.
    let b = burst::tenant_burst(ctx, burst).await?;
    b.rows(&mut r, burst, ctx.opts.quiet_rate);
    r.detail("tenant_burst", &b);
    Ok(r)
}

/// 8 healthy endpoints subscribed to everything, with a hanging and a failing one beside them
/// when `bad`; the sidecar's request timeout is 2 s.
async fn neighbours_run(ctx: &Ctx, events: usize, bad: bool) -> anyhow::Result<RunResult> {
    let label = if bad {
        "isolation-neighbours"
    } else {
        "isolation-alone"
    };
    let mut env = ctx.sidecar_env("isolation");
    env.push(("OUTBOXD_REQUEST_TIMEOUT".into(), "2s".into()));
    let db = ctx.cluster.fresh_db(label, 10_000).await?;
    let w = Arc::new(Workload::uniform(events, 10_000, ctx.opts.payload_bytes));
    let mut specs: Vec<EndpointSpec> = (0..8)
        .map(|i| endpoint(&format!("healthy{i}"), EVERY_TYPE, 0, Behaviour::Ok, true))
        .collect();
    if bad {
        let hang = Behaviour::Hang(Duration::from_secs(10));
        specs.push(endpoint("hanging", EVERY_TYPE, 0, hang, false));
        specs.push(endpoint("failing", EVERY_TYPE, 0, Behaviour::Fail, false));
    }
    let x = measure(
        ctx,
        &db,
        &mut specs,
        RunSpec {
            sidecar_env: env,
            ..RunSpec::saturating(ctx, label, events, w)
        },
    )
    .await?;
    db.cleanup().await;
    Ok(x)
}

/// Part A's rows: the healthy endpoints' throughput and cost alone and with bad neighbours.
fn neighbours_rows(r: &mut ScenarioReport, alone: &RunResult, with: &RunResult, smoke: bool) {
    let ratio = with.deliveries_per_second / alone.deliveries_per_second.max(1e-9);
    r.section("healthy endpoints' throughput");
    r.row("alone (deliveries/s)", fmt_int(alone.deliveries_per_second));
    r.row(
        "next to hanging + failing (deliveries/s)",
        fmt_int(with.deliveries_per_second),
    );
    r.target(
        "ratio",
        format!("{:.0} %", ratio * 100.0),
        "≥ 90 %",
        if smoke { None } else { Some(ratio >= 0.9) },
    );
    if let (Some(a), Some(b)) = (cpu_us_per_delivery(alone), cpu_us_per_delivery(with)) {
        r.row(
            "CPU per healthy delivery (postgres + sidecar + bench) alone / with",
            format!("{a:.0} / {b:.0} µs ({:.0} %)", a / b * 100.0),
        );
        r.detail("cpu_normalized_ratio", a / b);
    }
    r.row(
        "other processes' CPU during alone / with (cores)",
        format!(
            "{:.2} / {:.2}",
            alone.other_cpu_seconds.unwrap_or(f64::NAN) / alone.wall_seconds.max(1e-9),
            with.other_cpu_seconds.unwrap_or(f64::NAN) / with.wall_seconds.max(1e-9)
        ),
    );
    r.row(
        "healthy latency alone / with neighbours",
        format!("{} | {}", alone.latency.short(), with.latency.short()),
    );
    let reqs = |name: &str| {
        with.per_endpoint
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or(0, |(_, r, _)| *r)
    };
    r.row(
        "requests to the hanging / failing endpoint",
        format!("{} / {}", reqs("hanging"), reqs("failing")),
    );
    for x in [alone, with] {
        check_run(r, x);
    }
    r.detail("alone", alone);
    r.detail("with_neighbours", with);
    r.detail("healthy_ratio", ratio);
}

/// CPU per delivery (PostgreSQL + sidecar + bench), µs; known with PostgreSQL's figure only.
fn cpu_us_per_delivery(x: &RunResult) -> Option<f64> {
    x.postgres_cpu_seconds.map(|pg| {
        (pg + x.sidecar.cpu_seconds + x.bench_cpu_seconds) * 1e6
            / x.deliveries_received.max(1) as f64
    })
}
