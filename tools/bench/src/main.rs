//! `outboxd-bench`: throughput, latency and cost growth of outboxd, next to the machine's own
//! floor. See BENCHMARKS.md for the figures and how to read them.
//!
//! ```text
//! cargo build --release --bin outboxd
//! cargo run --release -p outboxd-bench -- --outboxd target/release/outboxd <scenario> [options]
//!   steady     1. steady throughput (--events 1000000 --keys 10000 --endpoints 10)
//!   floor      2. the machine's floor: minimal SQL per delivery, and the receiver's ceiling
//!   growth     3. cost growth with pending rows (--max-rows) and endpoints (--max-endpoints)
//!   latency    4. commit → receive latency at low load (--rate 100 --seconds 20)
//!   isolation  5. hanging / failing endpoints; a tenant's burst (--burst) vs a quiet tenant
//!   hotkeys    6. 10 hot keys vs 10 000 keys
//!   filters    7. routing cost of content filters at 10, 1 000, 100 000 subscriptions (--max-endpoints)
//!   hotlane    8. one resource key to one endpoint answering in 1 ms (--hotlane-events 5000)
//!   replicas  10. 2 sidecar replicas against 1 on the one database, alternating 1, 2, 1, 2
//!              (--replica-events 50000)
//!   inbound    9. inbound webhooks vs the listener's floor, fsync on (--inbound-burst 50000;
//!              tools/bench/inbound.sh runs the load and its own PostgreSQL; needs wrk)
//!   all        every scenario (floor first, so steady reports its ratio to it)
//!   smoke      scenarios 1–8 and 10 at a tiny size; exits non-zero on a correctness failure
//! ```
//!
//! Everything it runs against comes from the test kit ([`testkit`]): PostgreSQL is
//! `DATABASE_URL` when set (a fresh database per run is created there, and dropped afterwards),
//! otherwise a throwaway local cluster, durable (PostgreSQL's defaults for `fsync`,
//! `full_page_writes`, `synchronous_commit`) unless `--unsafe-fast` turns all three off; the sidecar is the `outboxd` binary named by
//! `--outboxd PATH` or `OUTBOXD_BIN` (build it first), run as a child process (`outboxd run`);
//! the webhook receiver is the test kit's, with the bench's script doing the counting.
//!
//! Modules, top to bottom; each imports only from rows below its own, so no import climbs back:
//!
//! ```text
//! main                        parses, runs the scenario list, writes the JSON
//!  scenarios::{floor, steady, growth, latency, isolation, hotkeys, filters, hotlane, replicas, inbound}  (never each other)
//!   floor (db, http)          the machine's floor, measured (scenario 2 and steady use it)
//!    run (stage, figures, endpoints, db)    the measured run the other five scenarios use
//!     ctx                     Opts (the command line) and Ctx (cluster, binary, out dir)
//!      pg  sidecar  machine   the bench's side of PostgreSQL, the sidecar and the machine
//!       producers             the publishing workload
//!        receiver  report     the receiver's script (counting, arrival log); figures, table, JSON
//! ```
//!
//! Below them all, from another crate: `testkit` (cluster and databases, receiver, sidecar
//! process handle, `/proc` readers).

mod ctx;
mod floor;
mod machine;
mod pg;
mod producers;
mod receiver;
mod report;
mod run;
mod scenarios;
mod sidecar;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use ctx::{Ctx, Opts};
use report::ScenarioReport;
use scenarios::Carried;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = Opts::parse();
    match run(opts).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("outboxd-bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the selected scenario(s); `Ok(false)` when a correctness check failed.
async fn run(opts: Opts) -> anyhow::Result<bool> {
    let scenario = opts.scenario;
    let ctx = Ctx::start(opts).await?;
    let t0 = Instant::now();
    let mut carried = Carried::default();
    let mut reports: Vec<ScenarioReport> = Vec::new();
    for s in scenarios::expand(scenario) {
        let r = scenarios::run_one(s, &ctx, &mut carried)
            .await
            .with_context(|| format!("scenario {}", s.name()))?;
        r.print();
        write_scenario_json(&ctx, &r)?;
        reports.push(r);
    }
    let ok = reports.iter().all(|r| r.failures.is_empty());
    if scenario.is_list() {
        write_list_json(&ctx, &reports, t0, ok)?;
    }
    if ctx.opts.keep {
        ctx.cluster.detach();
    }
    if let Some(line) = &carried.steady_line {
        println!("{line}");
    }
    Ok(ok)
}

/// One scenario's JSON: the whole result when it ran alone (`--json` or
/// target/bench/<name>.json), else its part of a list (target/bench/[smoke-]<name>.json).
fn write_scenario_json(ctx: &Ctx, r: &ScenarioReport) -> anyhow::Result<()> {
    if !ctx.opts.scenario.is_list() {
        let path = ctx
            .opts
            .json
            .clone()
            .unwrap_or_else(|| ctx.out_dir.join(format!("{}.json", r.name)));
        let mut v = r.to_json();
        v["machine"] = json!(ctx.machine);
        v["postgres"] = json!(ctx.cluster.info);
        v["command"] = json!(std::env::args().collect::<Vec<_>>());
        report::write_json(&path, &v)?;
        println!("json: {}", path.display());
    } else {
        let path = ctx.out_dir.join(format!(
            "{}{}.json",
            if ctx.smoke { "smoke-" } else { "" },
            r.name
        ));
        report::write_json(&path, &r.to_json())?;
    }
    Ok(())
}

/// `all` or `smoke`: every scenario's result in one JSON file, and the closing line.
fn write_list_json(
    ctx: &Ctx,
    reports: &[ScenarioReport],
    t0: Instant,
    ok: bool,
) -> anyhow::Result<()> {
    let scenario = ctx.opts.scenario;
    let path = ctx
        .opts
        .json
        .clone()
        .unwrap_or_else(|| ctx.out_dir.join(format!("{}.json", scenario.name())));
    let v = json!({
        "scenario": scenario.name(),
        "machine": ctx.machine,
        "postgres": ctx.cluster.info,
        "command": std::env::args().collect::<Vec<_>>(),
        "seconds": t0.elapsed().as_secs_f64(),
        "scenarios": reports.iter().map(ScenarioReport::to_json).collect::<Vec<_>>(),
    });
    report::write_json(&path, &v)?;
    println!();
    println!(
        "{}: {} scenarios in {:.1} s, correctness {}; json: {}",
        scenario.name(),
        reports.len(),
        t0.elapsed().as_secs_f64(),
        if ok { "ok" } else { "FAILED" },
        path.display()
    );
    if ctx.smoke && t0.elapsed().as_secs() >= 60 {
        println!("note: smoke took longer than its 60 s budget");
    }
    Ok(())
}
