//! The measured run every throughput scenario shares: fresh receiver, endpoints registered,
//! sidecar started, producers publishing, wait until every expected delivery arrived, then the
//! figures (throughput over the middle 80 % of arrivals, commit → receive latency, sidecar CPU
//! and peak RSS, WAL and rows written) and the correctness checks (signatures, per-resource
//! order, duplicates, nothing lost).

pub mod db;
pub mod endpoints;
pub mod figures;
pub mod stage;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use crate::pg::{BenchDb, RowsWritten, rows_between};
use crate::producers::{EVENT_TYPES, Pace, ProducerRun, ProducerStats, Progress, Workload};
use crate::receiver::{Arrival, EndpointSpec, Totals};
use crate::report::{Latency, ScenarioReport, fmt_bytes, fmt_int};
use crate::sidecar::{self, SidecarStats};
use figures::{CpuClocks, cpu_used, latencies_ns, lost_deliveries, per_endpoint, rates};
use stage::{Ended, Sidecars, Stage};

/// One measured run.
pub struct RunSpec {
    pub label: String,
    pub workload: Arc<Workload>,
    /// Event numbers to publish.
    pub events: Vec<u32>,
    pub producers: usize,
    pub batch: usize,
    pub pace: Pace,
    pub sidecar_env: Vec<(String, String)>,
    pub max_in_flight: Option<i32>,
    /// Sidecar replicas on the one database (`--replicas`, unless a scenario sets it).
    pub replicas: u32,
    /// Let the sidecar sit idle this long before publishing (LISTEN/NOTIFY path).
    pub idle_before: Duration,
    pub timeout: Duration,
}

impl RunSpec {
    /// Publishes events `0..events` as fast as the backlog limit allows, with the bench's
    /// producers, batch size, sidecar settings and timeout. Scenarios override the rest.
    pub fn saturating(ctx: &Ctx, label: &str, events: usize, workload: Arc<Workload>) -> RunSpec {
        RunSpec {
            label: label.to_owned(),
            events: (0..events as u32).collect(),
            workload,
            producers: ctx.opts.producers,
            batch: ctx.opts.batch,
            pace: Pace::Unlimited {
                backlog: Some(ctx.opts.max_backlog),
            },
            sidecar_env: ctx.sidecar_env(label),
            max_in_flight: ctx.opts.max_in_flight,
            replicas: ctx.opts.replicas,
            idle_before: Duration::from_millis(200),
            timeout: ctx.run_timeout(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub label: String,
    pub events_published: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// Over the middle 80 % of arrivals (10th to 90th percentile of arrival times).
    pub deliveries_per_second: f64,
    /// All deliveries / (last arrival − first publish).
    pub deliveries_per_second_overall: f64,
    pub seconds: f64,
    pub latency: Latency,
    pub sidecar: SidecarStats,
    /// Sidecar replicas (`--replicas`); `sidecar` sums their CPU and counters.
    pub replicas: usize,
    /// Cores used on average by the sidecar over the run.
    pub sidecar_cores: f64,
    pub postgres_cpu_seconds: Option<f64>,
    pub bench_cpu_seconds: f64,
    /// All CPU time used on the machine during the run (every process), seconds.
    pub machine_cpu_seconds: f64,
    /// Machine CPU not used by the sidecar, PostgreSQL or the bench: other work on the
    /// machine during the run (seconds; embedded cluster only).
    pub other_cpu_seconds: Option<f64>,
    /// Wall seconds of the measured run (first publish to last arrival).
    pub wall_seconds: f64,
    /// Sidecar CPU (cores) while idle before publishing (just started; `idle_before` long).
    pub idle_cores: f64,
    pub wal_bytes: i64,
    pub wal_bytes_per_delivery: f64,
    pub rows: RowsWritten,
    pub rows_per_delivery: f64,
    pub producer: ProducerStats,
    pub receiver: Totals,
    pub lost: u64,
    pub lost_samples: Vec<String>,
    pub violation_samples: Vec<String>,
    pub delivery_states: BTreeMap<String, i64>,
    pub unrouted_events: i64,
    pub timed_out: bool,
    pub max_rss_sampled_mb: f64,
    /// Per endpoint: (name, requests, unique deliveries).
    pub per_endpoint: Vec<(String, u64, u64)>,
    #[serde(skip)]
    pub arrivals: Vec<Arrival>,
}

impl RunResult {
    /// Correctness failures of this run.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let r = &self.receiver;
        if r.order_violations > 0 {
            f.push(format!(
                "{}: {} per-resource order violations, e.g. {:?}",
                self.label,
                r.order_violations,
                self.violation_samples.first()
            ));
        }
        if r.bad_signatures > 0 {
            f.push(format!(
                "{}: {} bad signatures",
                self.label, r.bad_signatures
            ));
        }
        if r.bad_payloads > 0 || r.unknown_paths > 0 {
            f.push(format!(
                "{}: {} unparsable payloads, {} requests to unknown paths",
                self.label, r.bad_payloads, r.unknown_paths
            ));
        }
        if self.lost > 0 {
            f.push(format!(
                "{}: {} deliveries never arrived{}, e.g. {:?}",
                self.label,
                self.lost,
                if self.timed_out { " (timed out)" } else { "" },
                self.lost_samples.first()
            ));
        }
        f
    }

    /// Sidecar CPU milliseconds per 1000 deliveries.
    pub fn cpu_ms_per_1000(&self) -> f64 {
        self.sidecar.cpu_seconds * 1e6 / self.deliveries_received.max(1) as f64
    }
}

/// Publishes `spec.events` through a fresh sidecar on `db` and measures.
pub async fn measure(
    ctx: &Ctx,
    db: &BenchDb,
    specs: &mut [EndpointSpec],
    spec: RunSpec,
) -> anyhow::Result<RunResult> {
    let w = spec.workload.clone();
    let expected = w.expected_tracked(&spec.events, specs);
    let (label, env) = (&spec.label, &spec.sidecar_env);
    let sidecars = Sidecars {
        replicas: spec.replicas,
        label,
        env,
    };
    let mut stage = Stage::start(ctx, db, specs, w.clone(), spec.max_in_flight, sidecars).await?;
    let idle_cores = stage.idle_cores(spec.idle_before).await;

    let cpu0 = CpuClocks::read(ctx);
    let t_start = stage.recv.state.now_ns();
    let progress = Arc::new(Progress::default());
    let prun = ProducerRun {
        url: db.url.clone(),
        producers: spec.producers,
        batch: spec.batch,
        pace: spec.pace,
        deadline: spec.timeout,
    };
    let producer = stage.spawn_producers(prun, spec.events.clone(), progress.clone());
    let (timed_out, max_rss) =
        wait_for_deliveries(ctx, &spec, &mut stage, &producer, &progress, expected).await?;
    let t_end = stage.recv.state.now_ns();
    let producer_stats = producer.await.context("producers panicked")??;
    let cpu = cpu_used(cpu0, CpuClocks::read(ctx));
    let wal1 = db.wal_bytes().await?;
    let max_rss = stage
        .sidecars()
        .fold(max_rss, |m, (s, _)| m.max(sidecar::rss_mb(s)));
    let replicas = stage.sidecars().count();
    let Ended {
        sidecar: sc,
        snap1,
        states,
        unrouted,
    } = Ended::stop(db, stage.sidecar, stage.sidecar_cpu0, stage.more).await?;

    let state = &stage.recv.state;
    let mut arrivals = state.take_arrivals();
    arrivals.sort_unstable_by_key(|a| a.t_ns);
    let received = arrivals.len() as u64;
    let latency = Latency::from_ns(&mut latencies_ns(&arrivals, &stage.commits));
    let (sustained, overall, seconds) = rates(&arrivals, t_start, t_end);
    // Lost: committed events whose tracked deliveries never arrived.
    let (lost, lost_samples) = lost_deliveries(
        spec.events.iter().map(|&n| n as usize),
        &stage.specs,
        |n| stage.commits.get(n).is_some(),
        |n, s| w.tracked_at(n, s),
        |i, n| state.seen(i, n),
        |n, s| {
            format!(
                "event n={n} ({} key res:{}) at endpoint {} (id {:?})",
                EVENT_TYPES[w.type_of[n] as usize], w.key_of[n], s.name, s.db_id
            )
        },
    );

    let rows = rows_between(&stage.snap0, &snap1);
    let wal = wal1 - stage.snap0.wal_bytes;
    let d = received.max(1) as f64;
    let run_secs = (t_end - t_start) as f64 / 1e9;
    Ok(RunResult {
        label: spec.label,
        events_published: producer_stats.events,
        deliveries_expected: expected,
        deliveries_received: received,
        deliveries_per_second: sustained,
        deliveries_per_second_overall: overall,
        seconds,
        latency,
        sidecar_cores: sc.cpu_seconds / run_secs.max(1e-9),
        postgres_cpu_seconds: cpu.postgres,
        bench_cpu_seconds: cpu.bench,
        machine_cpu_seconds: cpu.machine,
        other_cpu_seconds: cpu.other(sc.cpu_seconds),
        sidecar: sc,
        replicas,
        wall_seconds: run_secs,
        idle_cores,
        wal_bytes: wal,
        wal_bytes_per_delivery: wal as f64 / d,
        rows_per_delivery: rows.total as f64 / d,
        rows,
        producer: producer_stats,
        receiver: state.totals(),
        lost,
        lost_samples,
        violation_samples: state.violation_samples(),
        delivery_states: states,
        unrouted_events: unrouted,
        timed_out,
        max_rss_sampled_mb: max_rss,
        per_endpoint: per_endpoint(&stage.specs, state),
        arrivals,
    })
}

/// Waits until every expected delivery arrived and the producers finished (or, when they
/// stopped early, until what they published arrived), sampling the sidecar's RSS each second.
/// Returns (timed out, highest RSS sampled in MB); fails when the sidecar exits.
async fn wait_for_deliveries(
    ctx: &Ctx,
    spec: &RunSpec,
    stage: &mut Stage,
    producer: &JoinHandle<anyhow::Result<ProducerStats>>,
    progress: &Progress,
    expected: u64,
) -> anyhow::Result<(bool, f64)> {
    let deadline = Instant::now() + spec.timeout;
    let mut max_rss: f64 = 0.0;
    let mut last_sample = Instant::now();
    loop {
        let got = stage.recv.state.tracked_unique.load(Ordering::Relaxed);
        if got >= expected && producer.is_finished() {
            return Ok((false, max_rss));
        }
        // Producers stopped early (deadline): wait only for what they published.
        if producer.is_finished() && got >= progress.published_tracked.load(Ordering::Relaxed) {
            return Ok((false, max_rss));
        }
        if !stage.all_running() {
            anyhow::bail!(
                "{}: outboxd exited during the run (log: {})",
                spec.label,
                ctx.log_path(&spec.label).display()
            );
        }
        if Instant::now() > deadline {
            progress.stop.store(true, Ordering::Relaxed);
            return Ok((true, max_rss));
        }
        if last_sample.elapsed() > Duration::from_secs(1) {
            max_rss = stage
                .sidecars()
                .fold(max_rss, |m, (s, _)| m.max(sidecar::rss_mb(s)));
            last_sample = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The common rows of a throughput run.
pub fn run_rows(r: &mut ScenarioReport, x: &RunResult) {
    if x.replicas > 1 {
        r.row(
            "sidecar replicas (CPU summed, RSS the highest)",
            x.replicas.to_string(),
        );
    }
    r.row(
        "events published / deliveries received",
        format!(
            "{} / {}",
            fmt_int(x.events_published as f64),
            fmt_int(x.deliveries_received as f64)
        ),
    );
    r.row("run time (s)", format!("{:.1}", x.seconds));
    r.row(
        "deliveries/s overall",
        fmt_int(x.deliveries_per_second_overall),
    );
    r.row("commit → receive latency", x.latency.short());
    r.row(
        "sidecar CPU (s; cores; ms per 1000 deliveries)",
        format!(
            "{:.1}; {:.2}; {:.0}",
            x.sidecar.cpu_seconds,
            x.sidecar_cores,
            x.cpu_ms_per_1000()
        ),
    );
    if let Some(pg) = x.postgres_cpu_seconds {
        r.row(
            "postgres CPU (s; ms per 1000 deliveries)",
            format!(
                "{:.1}; {:.0}",
                pg,
                pg * 1e6 / x.deliveries_received.max(1) as f64
            ),
        );
    }
    r.row(
        "bench CPU (producers + receiver) (s)",
        format!("{:.1}", x.bench_cpu_seconds),
    );
    if let Some(o) = x.other_cpu_seconds {
        r.row(
            "other processes' CPU during the run (s; cores)",
            format!("{:.1}; {:.2}", o, o / x.wall_seconds.max(1e-9)),
        );
    }
    r.row(
        "WAL per delivery",
        fmt_bytes(x.wal_bytes_per_delivery).to_string(),
    );
    r.row(
        "outbox rows written per delivery",
        format!("{:.2}", x.rows_per_delivery),
    );
}

pub fn check_run(r: &mut ScenarioReport, x: &RunResult) {
    for f in x.failures() {
        r.fail(f);
    }
    if x.receiver.duplicates > 0 {
        r.note(format!(
            "{}: {} duplicate deliveries (allowed: at-least-once)",
            x.label, x.receiver.duplicates
        ));
    }
    if x.unrouted_events > 0 {
        r.note(format!(
            "{}: {} events still unrouted at the end",
            x.label, x.unrouted_events
        ));
    }
    let errs: f64 = x
        .sidecar
        .metrics
        .iter()
        .filter(|(k, _)| k.starts_with("outboxd_db_errors_total"))
        .map(|(_, v)| v)
        .sum();
    if errs > 0.0 {
        r.note(format!(
            "{}: sidecar counted {errs} database errors",
            x.label
        ));
    }
}
