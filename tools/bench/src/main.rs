//! `outboxd-bench`: throughput, latency and cost growth of outboxd, next to the machine's own
//! floor. See BENCHMARKS.md for the figures and how to read them.
//!
//! ```text
//! cargo run --release --bin outboxd-bench -- <scenario> [options]
//!   steady     1. steady throughput (--events 1000000 --keys 10000 --endpoints 10)
//!   floor      2. the machine's floor: minimal SQL per delivery, and the receiver's ceiling
//!   growth     3. cost growth with pending rows (--max-rows) and endpoints (--max-endpoints)
//!   latency    4. commit → receive latency at low load (--rate 100 --seconds 20)
//!   isolation  5. hanging / failing endpoints; a tenant's burst (--burst) vs a quiet tenant
//!   hotkeys    6. 10 hot keys vs 10 000 keys
//!   all        every scenario (floor first, so steady reports its ratio to it)
//!   smoke      every scenario at a tiny size (< 60 s); exits non-zero on a correctness failure
//! ```
//!
//! PostgreSQL: `DATABASE_URL` when set (a fresh database per run is created there, and dropped
//! afterwards), otherwise a throwaway local cluster ([`outboxd::embedded_pg`]). The sidecar is the
//! `outboxd` binary next to this one, run as a child process (`outboxd run`).

mod floor;
mod harness;
mod producers;
mod receiver;
mod report;
mod run;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::json;

use harness::{Cluster, Machine};
use report::ScenarioReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Steady,
    Floor,
    Growth,
    Latency,
    Isolation,
    Hotkeys,
    All,
    Smoke,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Floor => "floor",
            Scenario::Growth => "growth",
            Scenario::Latency => "latency",
            Scenario::Isolation => "isolation",
            Scenario::Hotkeys => "hotkeys",
            Scenario::All => "all",
            Scenario::Smoke => "smoke",
        }
    }
}

/// Benchmark outboxd against a real PostgreSQL and a local receiver.
#[derive(Debug, Clone, Parser)]
#[command(name = "outboxd-bench", version)]
pub struct Opts {
    /// Which scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// The outboxd binary to run (build it first: `cargo build --release --bin outboxd`).
    #[arg(long, env = "OUTBOXD_BIN", value_name = "PATH")]
    pub outboxd: Option<PathBuf>,

    /// Where to write the JSON results (default: target/bench/<scenario>.json).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// steady: events to publish.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// steady: resource keys (ordering lanes per endpoint).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u32,
    /// steady: endpoints (each subscribed to 2-3 of 10 event types; average fan-out 2.5).
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Concurrent producer connections.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Events per producer transaction (throughput runs).
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Throughput runs: producers pause while more than this many deliveries are published
    /// but not yet received (keeps the run a steady state instead of a growing backlog).
    #[arg(long, default_value_t = 20_000)]
    pub max_backlog: u64,
    /// OUTBOXD_CONCURRENCY for the sidecar (default: outboxd's own default).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// OUTBOXD_DB_POOL_SIZE for the sidecar (default: outboxd's own default).
    #[arg(long)]
    pub db_pool: Option<usize>,
    /// Set max_in_flight on the bench's endpoints (default: the schema default).
    #[arg(long)]
    pub max_in_flight: Option<i32>,
    /// Extra OUTBOXD_* settings for the sidecar, e.g. --sidecar-env OUTBOXD_CLAIM_BATCH=512.
    #[arg(long, value_parser = parse_kv)]
    pub sidecar_env: Vec<(String, String)>,

    /// steady: do not measure the floor (no ratio to it).
    #[arg(long)]
    pub no_floor: bool,
    /// floor: measured seconds of each floor run (after 2 s of warm-up).
    #[arg(long, default_value_t = 10)]
    pub floor_seconds: u64,
    /// floor: database connections running the minimal SQL.
    #[arg(long, default_value_t = 4)]
    pub floor_workers: usize,

    /// growth: largest pending-row level (levels: 10k, 1M, 10M, up to this).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: u64,
    /// growth: largest endpoint level (levels: 10, 1000, 100000, up to this).
    #[arg(long, default_value_t = 100_000)]
    pub max_endpoints: u64,
    /// growth: fresh events published on top of each level.
    #[arg(long, default_value_t = 20_000)]
    pub growth_events: u64,

    /// latency: events per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// latency: seconds of publishing.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,

    /// isolation: events for the healthy-throughput comparison.
    #[arg(long, default_value_t = 20_000)]
    pub isolation_events: u64,
    /// isolation: events the bursting tenant publishes at once.
    #[arg(long, default_value_t = 200_000)]
    pub burst: u64,
    /// isolation: events per second of the quiet tenant during the burst.
    #[arg(long, default_value_t = 10.0)]
    pub quiet_rate: f64,

    /// hotkeys: events per run.
    #[arg(long, default_value_t = 20_000)]
    pub hotkey_events: u64,

    /// Embedded cluster: fsync=on (default off: fsync, full_page_writes and synchronous_commit
    /// off, as in the tests).
    #[arg(long)]
    pub fsync: bool,
    /// Embedded cluster: load pg_stat_statements and put the top statements in the JSON.
    #[arg(long)]
    pub pg_stat_statements: bool,
    /// Embedded cluster: leave it running at the end (prints how to reach and stop it) and
    /// keep the bench databases, for investigation.
    #[arg(long)]
    pub keep: bool,
    /// Give up waiting for one run's deliveries after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    if !k.starts_with("OUTBOXD_") {
        return Err(format!("{k}: only OUTBOXD_* settings"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Everything a scenario needs.
pub struct Ctx {
    pub opts: Opts,
    pub cluster: Cluster,
    pub outboxd: PathBuf,
    pub out_dir: PathBuf,
    pub machine: Machine,
    pub smoke: bool,
    /// Set by the floor scenario; steady reports its ratio to it.
    pub floor: Option<floor::FloorResult>,
    /// The last line of steady, printed again at the very end.
    pub steady_line: Option<String>,
}

impl Ctx {
    /// The sidecar's environment for throughput runs.
    pub fn sidecar_env(&self, label: &str) -> Vec<(String, String)> {
        let mut env = vec![("OUTBOXD_REPLICA_ID".to_owned(), format!("bench-{label}"))];
        if let Some(c) = self.opts.concurrency {
            env.push(("OUTBOXD_CONCURRENCY".into(), c.to_string()));
        }
        if let Some(p) = self.opts.db_pool {
            env.push(("OUTBOXD_DB_POOL_SIZE".into(), p.to_string()));
        }
        env.extend(self.opts.sidecar_env.iter().cloned());
        env
    }
}

/// target/bench, next to the binary's profile directory.
fn default_out_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.parent()
                .and_then(|p| p.parent())
                .map(|t| t.join("bench"))
        })
        .unwrap_or_else(|| PathBuf::from("target/bench"))
}

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
    let smoke = scenario == Scenario::Smoke;
    let out_dir = default_out_dir();
    let (outboxd, about) =
        testkit::outboxd_binary(opts.outboxd.as_deref()).map_err(anyhow::Error::msg)?;
    println!("outboxd binary: {about}");
    // After the sidecar binary is (re)built: its build time goes into the report.
    let machine = Machine::read();
    let cluster = Cluster::start(opts.fsync, opts.pg_stat_statements, opts.keep).await?;
    println!(
        "outboxd-bench {} (source {}): {} CPUs, {:.1} GiB, kernel {}, load {} | PostgreSQL {} ({}, fsync={}, synchronous_commit={}, shared_buffers={})",
        scenario.name(),
        machine.source,
        machine.nproc,
        machine.mem_total_gib,
        machine.kernel,
        machine.loadavg_at_start,
        cluster.info.server_version,
        cluster.info.kind,
        cluster.info.settings.get("fsync").map_or("?", |s| s),
        cluster
            .info
            .settings
            .get("synchronous_commit")
            .map_or("?", |s| s),
        cluster
            .info
            .settings
            .get("shared_buffers")
            .map_or("?", |s| s),
    );
    let mut ctx = Ctx {
        opts,
        cluster,
        outboxd,
        out_dir,
        machine,
        smoke,
        floor: None,
        steady_line: None,
    };
    let list: Vec<Scenario> = match scenario {
        Scenario::All | Scenario::Smoke => vec![
            Scenario::Floor,
            Scenario::Steady,
            Scenario::Growth,
            Scenario::Latency,
            Scenario::Isolation,
            Scenario::Hotkeys,
        ],
        s => vec![s],
    };
    let t0 = std::time::Instant::now();
    let mut reports: Vec<ScenarioReport> = Vec::new();
    for s in list {
        let r = match s {
            Scenario::Floor => scenarios::floor::scenario(&mut ctx).await,
            Scenario::Steady => scenarios::steady::scenario(&mut ctx).await,
            Scenario::Growth => scenarios::growth::scenario(&mut ctx).await,
            Scenario::Latency => scenarios::latency::scenario(&mut ctx).await,
            Scenario::Isolation => scenarios::isolation::scenario(&mut ctx).await,
            Scenario::Hotkeys => scenarios::hotkeys::scenario(&mut ctx).await,
            Scenario::All | Scenario::Smoke => continue,
        }
        .with_context(|| format!("scenario {}", s.name()))?;
        r.print();
        if list_len_one(scenario) {
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
                if smoke { "smoke-" } else { "" },
                r.name
            ));
            report::write_json(&path, &r.to_json())?;
        }
        reports.push(r);
    }
    let ok = reports.iter().all(|r| r.failures.is_empty());
    if !list_len_one(scenario) {
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
        if smoke && t0.elapsed().as_secs() >= 60 {
            println!("note: smoke took longer than its 60 s budget");
        }
    }
    if ctx.opts.keep {
        ctx.cluster.detach();
    }
    if let Some(line) = &ctx.steady_line {
        println!("{line}");
    }
    Ok(ok)
}

fn list_len_one(s: Scenario) -> bool {
    !matches!(s, Scenario::All | Scenario::Smoke)
}
