//! What every scenario is given: the command line ([`Opts`]) and the run's environment
//! ([`Ctx`]: the cluster, the sidecar binary, the output directory, the machine). Nothing here
//! changes while the scenarios run; what one scenario hands to another travels through
//! `scenarios::Carried`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::machine::Machine;
use crate::pg::BenchCluster;

/// The scenario named on the command line; `all` and `smoke` stand for the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Steady,
    Floor,
    Growth,
    Latency,
    Isolation,
    Hotkeys,
    Filters,
    Hotlane,
    Replicas,
    Inbound,
    All,
    Smoke,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Steady => "steady",
            Scenario::Floor => "floor",
            Scenario::Growth => "growth",
            Scenario::Latency => "latency",
            Scenario::Isolation => "isolation",
            Scenario::Hotkeys => "hotkeys",
            Scenario::Filters => "filters",
            Scenario::Hotlane => "hotlane",
            Scenario::Replicas => "replicas",
            Scenario::Inbound => "inbound",
            Scenario::All => "all",
            Scenario::Smoke => "smoke",
        }
    }

    /// `all` and `smoke` run a list of scenarios; the others are one.
    pub fn is_list(self) -> bool {
        matches!(self, Scenario::All | Scenario::Smoke)
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
    /// Sidecar replicas of each throughput run, all on the one database, each with its own
    /// OUTBOXD_REPLICA_ID; CPU is their sum, RSS the highest of them (BENCHMARKS.md,
    /// "Replicas").
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: u32,
    /// Set max_in_flight on the bench's endpoints (default: the schema default).
    #[arg(long)]
    pub max_in_flight: Option<i32>,
    /// Extra OUTBOXD_* settings for the sidecar, e.g. --sidecar-env OUTBOXD_CLAIM_BATCH=512.
    #[arg(long, value_parser = parse_kv)]
    pub sidecar_env: Vec<(String, String)>,
    /// Put PgBouncer (`pgbouncer` on PATH or in /usr/sbin) in this pool mode between the sidecar
    /// and PostgreSQL, with OUTBOXD_POOLER set to match; producers and the receiver's checks stay
    /// on the direct connection. What a pooler costs (BENCHMARKS.md, "Poolers").
    #[arg(long, value_parser = ["session", "transaction"])]
    pub pgbouncer: Option<String>,

    /// steady: do not measure the floor (no ratio to it).
    #[arg(long)]
    pub no_floor: bool,
    /// floor: measured seconds of each floor run (after 2 s of warm-up).
    #[arg(long, default_value_t = 10)]
    pub floor_seconds: u64,
    /// floor: rounds of the database floor with publishing, each on a fresh database; the
    /// floor is the median round, and the range is reported (1 at smoke size).
    #[arg(long, default_value_t = 3)]
    pub floor_rounds: usize,
    /// floor: events of the round at the run's size (publish and deliver them, measure the
    /// middle 80 %, as steady measures outboxd; default: --events; 0: no such round).
    #[arg(long)]
    pub floor_events: Option<u64>,
    /// floor: database connections running the minimal SQL.
    #[arg(long, default_value_t = 4)]
    pub floor_workers: usize,

    /// growth: largest pending-row level (levels: 10k, 1M, 10M, up to this).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: u64,
    /// growth and filters: largest endpoint (subscription) level (levels: 10, 1000, 100000, up to this).
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
    /// filters: events routed by each run (6 runs per subscription level).
    #[arg(long, default_value_t = 20_000)]
    pub filter_events: u64,
    /// hotlane: events on the one resource key.
    #[arg(long, default_value_t = 5_000)]
    pub hotlane_events: u64,
    /// replicas: events of each run (1 replica, 2, 1, 2).
    #[arg(long, default_value_t = 50_000)]
    pub replica_events: u64,
    /// inbound: requests of the burst step (0: no burst step).
    #[arg(long, default_value_t = 50_000)]
    pub inbound_burst: u64,

    /// Embedded cluster: `fsync`, `full_page_writes` and `synchronous_commit` off (as in the
    /// tests): not durable, only for comparing with figures taken that way. The default is
    /// PostgreSQL's own (all three on), what a production server runs; the floor is always
    /// measured on the same cluster, so with the same settings. `smoke` always runs this way:
    /// it checks correctness at tiny sizes, in CI, and must stay fast.
    #[arg(long)]
    pub unsafe_fast: bool,
    /// Accepted and ignored: durability is the default now (older builds of the bench needed
    /// it, so one `STEADY_ARGS` serves both sides of `compare.sh`).
    #[arg(long, hide = true)]
    pub fsync: bool,
    /// Embedded cluster: load pg_stat_statements and put the top statements in the JSON.
    #[arg(long)]
    pub pg_stat_statements: bool,
    /// Embedded cluster: a PostgreSQL setting on top of the bench's (repeatable), e.g.
    /// `--pg-setting shared_buffers=2GB`. The floor runs on the same cluster, so with it too;
    /// the run's header and JSON show the settings that matter.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_pg_setting)]
    pub pg_setting: Vec<(String, String)>,
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

fn parse_pg_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v))
            if !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
        {
            Ok((k.to_owned(), v.to_owned()))
        }
        _ => Err(format!(
            "expected NAME=VALUE (a PostgreSQL setting), got {s:?}"
        )),
    }
}

/// Everything a scenario needs.
pub struct Ctx {
    pub opts: Opts,
    /// Where every run's fresh database is created.
    pub cluster: BenchCluster,
    /// The sidecar binary each run starts.
    pub outboxd: PathBuf,
    /// target/bench: JSON results, sidecar logs.
    pub out_dir: PathBuf,
    pub machine: Machine,
    /// Every scenario at a tiny size (the `smoke` scenario).
    pub smoke: bool,
}

/// Disk the growth scenario's largest level takes: its pending rows with their events,
/// indexes and WAL (an `all` run's 10 M-row level left a 16 GB cluster, 2026-12-01), and
/// 2 GB for the other scenarios' databases and the WAL between checkpoints.
pub fn growth_disk_bytes(max_rows: u64) -> u64 {
    max_rows.saturating_mul(1_800).saturating_add(2_000_000_000)
}

impl Ctx {
    /// Finds the sidecar binary, reads the machine and starts the cluster, printing what it
    /// found.
    pub async fn start(opts: Opts) -> anyhow::Result<Ctx> {
        let (outboxd, about) =
            testkit::outboxd_binary(opts.outboxd.as_deref()).map_err(anyhow::Error::msg)?;
        println!("outboxd binary: {about}");
        // After the sidecar binary is (re)built: its build time goes into the report.
        let machine = Machine::read(&outboxd);
        let durable = !opts.unsafe_fast && opts.scenario != Scenario::Smoke;
        let cluster = BenchCluster::start(
            durable,
            opts.pg_stat_statements,
            &opts.pg_setting,
            opts.keep,
        )
        .await?;
        if matches!(opts.scenario, Scenario::Growth | Scenario::All) {
            cluster.check_free_space(
                growth_disk_bytes(opts.max_rows),
                &format!("growth up to --max-rows {}", opts.max_rows),
                "lower the size (--max-rows)",
            )?;
        }
        let ctx = Ctx {
            smoke: opts.scenario == Scenario::Smoke,
            opts,
            cluster,
            outboxd,
            out_dir: default_out_dir(),
            machine,
        };
        println!("{}", ctx.header());
        Ok(ctx)
    }

    /// The first line of the output: what runs, on which machine and PostgreSQL.
    fn header(&self) -> String {
        let (machine, pg) = (&self.machine, &self.cluster.info);
        let setting = |name: &str| pg.settings.get(name).map_or("?", |s| s.as_str());
        format!(
            "outboxd-bench {} (source {}): {} CPUs, {:.1} GiB, kernel {}, load {} | PostgreSQL {} ({}, fsync={}, full_page_writes={}, synchronous_commit={}, shared_buffers={})",
            self.opts.scenario.name(),
            machine.source,
            machine.nproc,
            machine.mem_total_gib,
            machine.kernel,
            machine.loadavg_at_start,
            pg.server_version,
            pg.kind,
            setting("fsync"),
            setting("full_page_writes"),
            setting("synchronous_commit"),
            setting("shared_buffers"),
        )
    }

    /// `small` in smoke, else `full`: a scenario's size.
    pub fn smoke_or<T>(&self, small: T, full: T) -> T {
        if self.smoke { small } else { full }
    }

    /// How long to wait for one run's deliveries (`--timeout`, at most a minute in smoke).
    pub fn run_timeout(&self) -> Duration {
        Duration::from_secs(self.smoke_or(self.opts.timeout.min(60), self.opts.timeout))
    }

    /// Where the sidecar of the run `label` writes its log.
    pub fn log_path(&self, label: &str) -> PathBuf {
        self.out_dir.join("logs").join(format!("{label}.log"))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_settings_must_be_outboxd_name_value_pairs() {
        assert_eq!(
            parse_kv("OUTBOXD_CLAIM_BATCH=512"),
            Ok(("OUTBOXD_CLAIM_BATCH".to_owned(), "512".to_owned()))
        );
        assert!(parse_kv("OUTBOXD_CLAIM_BATCH").is_err());
        assert!(parse_kv("RUST_LOG=debug").is_err());
    }

    #[test]
    fn postgres_settings_are_name_value_pairs_with_plain_names() {
        assert_eq!(
            parse_pg_setting("shared_buffers=2GB"),
            Ok(("shared_buffers".to_owned(), "2GB".to_owned()))
        );
        assert!(parse_pg_setting("auto_explain.log_min_duration=0").is_ok());
        assert!(parse_pg_setting("shared_buffers").is_err());
        assert!(parse_pg_setting("=2GB").is_err());
        assert!(
            parse_pg_setting("a b=1").is_err(),
            "no room for a second -c word"
        );
    }

    #[test]
    fn growth_to_ten_million_rows_asks_for_the_disk_it_took() {
        // The crashed all run's cluster held 16 GB at its 10 M-row level.
        let ten_m = growth_disk_bytes(10_000_000);
        assert!(
            (18_000_000_000..=22_000_000_000).contains(&ten_m),
            "{ten_m}"
        );
        assert!(growth_disk_bytes(1_000_000) < 5_000_000_000);
        assert_eq!(growth_disk_bytes(u64::MAX), u64::MAX);
    }
}
