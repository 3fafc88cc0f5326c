//! Scenario 5, part B: one tenant's burst vs a quiet tenant. The burst is one run with no
//! backlog cap on two endpoints of tenant "big"; the quiet tenant publishes one event per
//! transaction at `--quiet-rate` to its own endpoint next to it until the burst is delivered.
//! The question is the quiet tenant's latency meanwhile.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use crate::pg::rows_between;
use crate::producers::{self, Pace, ProducerRun, ProducerStats, Progress, Workload};
use crate::receiver::{Arrival, Behaviour, RecvState};
use crate::report::{Latency, ScenarioReport, fmt_int, fmt_ms};
use crate::run::RunResult;
use crate::run::db::{DbTiming, db_timing_for};
use crate::run::endpoints::{EVERY_TYPE, endpoint};
use crate::run::figures::{lost_deliveries, rates};
use crate::run::stage::{Ended, Sidecars, Stage};

/// Keys of the bursting tenant's events, and of the quiet tenant's (numbered after them).
const KEYS_BIG: u32 = 10_000;
const KEYS_QUIET: u32 = 100;
/// The quiet tenant's endpoint, after the big tenant's two.
const QUIET_EP: usize = 2;

#[derive(Debug, Default, Serialize)]
pub struct BurstResult {
    burst_events: u64,
    burst_publish_seconds: f64,
    burst_seconds: f64,
    burst_deliveries_per_second: f64,
    burst_latency: Latency,
    quiet_events: u64,
    quiet_during: Latency,
    /// Quiet events committed while the burst was still being published.
    quiet_during_publish: Latency,
    /// Quiet events committed after the burst was published (while it was delivered).
    quiet_after_publish: Latency,
    quiet_all: Latency,
    /// Route / claim delays of the quiet tenant's events (database timestamps).
    quiet_db: DbTiming,
    /// Quiet tenant: (seconds since burst start at commit, latency ms), every delivery.
    quiet_series: Vec<(f64, f64)>,
    failures: Vec<String>,
    run: RunResult,
}

impl BurstResult {
    /// Part B's rows; `burst` and `quiet_rate` as asked for.
    pub fn rows(&self, r: &mut ScenarioReport, burst: usize, quiet_rate: f64) {
        r.section(format!(
            "tenant burst ({} events, 2 endpoints) vs quiet tenant ({}/s, 1 endpoint)",
            fmt_int(burst as f64),
            quiet_rate
        ));
        r.row(
            "burst: publish time (s) / delivered in (s)",
            format!(
                "{:.1} / {:.1}",
                self.burst_publish_seconds, self.burst_seconds
            ),
        );
        r.row(
            "burst deliveries/s (middle 80 %)",
            fmt_int(self.burst_deliveries_per_second),
        );
        let during = &self.quiet_during;
        r.row(
            "quiet tenant deliveries during the burst",
            during.count.to_string(),
        );
        r.target(
            "quiet tenant p99 during the burst",
            format!("{} ms", fmt_ms(during.p99_ms)),
            "< 1000 ms",
            (during.count > 0).then_some(during.p99_ms < 1000.0),
        );
        r.row("quiet tenant latency (during)", during.short());
        let (publish, after) = (&self.quiet_during_publish, &self.quiet_after_publish);
        r.row(
            "  committed while the burst was being published",
            format!("{} ({})", publish.short(), publish.count),
        );
        r.row(
            "  committed after it was published",
            format!("{} ({})", after.short(), after.count),
        );
        r.row(
            "quiet tenant route delay p50/p99 (db)",
            self.quiet_db.route_text(),
        );
        r.row(
            "quiet tenant claim delay p50/p99 (db)",
            self.quiet_db.claim_text(),
        );
        r.row(
            "sidecar peak RSS during the burst",
            format!("{:.1} MB", self.run.sidecar.peak_rss_mb),
        );
        for f in &self.failures {
            r.fail(f.clone());
        }
    }
}

pub async fn tenant_burst(ctx: &Ctx, burst: usize) -> anyhow::Result<BurstResult> {
    let quiet_rate = ctx.opts.quiet_rate.max(0.1);
    let max_quiet = ((quiet_rate * ctx.run_timeout().as_secs_f64()) as usize).min(1_000_000);
    let total = burst + max_quiet;
    let w = Arc::new(burst_workload(burst, total, ctx.opts.payload_bytes));
    let mut specs = vec![
        endpoint("big0", EVERY_TYPE, 0, Behaviour::Ok, true),
        endpoint("big1", EVERY_TYPE, 0, Behaviour::Ok, true),
        endpoint("quiet", EVERY_TYPE, 1, Behaviour::Ok, true),
    ];
    let db = ctx
        .cluster
        .fresh_db("isolation_burst", KEYS_BIG + KEYS_QUIET)
        .await?;
    let mut env = ctx.sidecar_env("isolation-burst");
    env.push(("OUTBOXD_REQUEST_TIMEOUT".into(), "2s".into()));
    let (label, max_in_flight) = ("isolation-burst", ctx.opts.max_in_flight);
    let mut stage = Stage::start(
        ctx,
        &db,
        &mut specs,
        w.clone(),
        max_in_flight,
        Sidecars {
            replicas: ctx.opts.replicas,
            label,
            env: &env,
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let burst_events: Vec<u32> = (0..burst as u32).collect();
    let burst_expected = w.expected_tracked(&burst_events, &stage.specs[..2]);
    let t_start = stage.recv.state.now_ns();
    let (burst_task, quiet_task) = start_publishing(ctx, &db.url, &stage, burst, total, quiet_rate);
    let (timed_out, burst_published_at) =
        wait_for_burst(ctx, &mut stage, &burst_task.task, burst_expected).await?;
    let t_burst_done = stage.recv.state.now_ns();
    burst_task.progress.stop.store(true, Ordering::Relaxed);
    quiet_task.progress.stop.store(true, Ordering::Relaxed);
    let burst_stats = burst_task.task.await.context("burst producers")??;
    let quiet_stats = quiet_task.task.await.context("quiet producer")??;
    // Let the last quiet events arrive.
    let quiet_expected = quiet_task
        .progress
        .published_tracked
        .load(Ordering::Relaxed);
    wait_for_quiet(&stage.recv.state, quiet_expected).await;
    let t_end = stage.recv.state.now_ns();
    let end = Ended::stop(&db, stage.sidecar, stage.sidecar_cpu0, stage.more).await?;
    let quiet_db = db_timing_for(&db, 0, 0, Some("quiet")).await?;

    let state = &stage.recv.state;
    let mut arrivals = state.take_arrivals();
    arrivals.sort_unstable_by_key(|a| a.t_ns);
    let times = BurstTimes {
        start: t_start,
        published: burst_published_at.unwrap_or(t_burst_done),
        delivered: t_burst_done,
    };
    let mut split = split_arrivals(&arrivals, |n| stage.commits.get(n), times);
    let (burst_rate, _, _) = rates(&split.big_arrivals, t_start, t_burst_done);
    let (lost, lost_samples) = lost_deliveries(
        0..total,
        &stage.specs,
        |n| stage.commits.get(n).is_some(),
        |n, s| s.tenant == w.tenant_of[n],
        |i, n| state.seen(i, n),
        |n, s| format!("event n={n} at endpoint {}", s.name),
    );
    let run = RunResult {
        label: label.into(),
        events_published: burst_stats.events + quiet_stats.events,
        deliveries_expected: burst_expected + quiet_expected,
        deliveries_received: arrivals.len() as u64,
        seconds: (t_end - t_start) as f64 / 1e9,
        sidecar: end.sidecar,
        rows: rows_between(&stage.snap0, &end.snap1),
        wal_bytes: end.snap1.wal_bytes - stage.snap0.wal_bytes,
        receiver: state.totals(),
        lost,
        lost_samples,
        violation_samples: state.violation_samples(),
        delivery_states: end.states,
        unrouted_events: end.unrouted,
        timed_out,
        producer: burst_stats.clone(),
        ..RunResult::default()
    };
    db.cleanup().await;
    Ok(BurstResult {
        burst_events: burst_stats.events,
        burst_publish_seconds: burst_published_at.map_or(f64::NAN, |t| (t - t_start) as f64 / 1e9),
        burst_seconds: (t_burst_done - t_start) as f64 / 1e9,
        burst_deliveries_per_second: burst_rate,
        burst_latency: Latency::from_ns(&mut split.big_ns),
        quiet_events: quiet_stats.events,
        quiet_during: Latency::from_ns(&mut split.quiet_during),
        quiet_during_publish: Latency::from_ns(&mut split.quiet_during_publish),
        quiet_after_publish: Latency::from_ns(&mut split.quiet_after_publish),
        quiet_all: Latency::from_ns(&mut split.quiet_all),
        quiet_db,
        quiet_series: split.quiet_series,
        failures: run.failures(),
        run,
    })
}

/// A group of producers, running.
struct Producers {
    task: JoinHandle<anyhow::Result<ProducerStats>>,
    progress: Arc<Progress>,
}

/// Starts both tenants' producers: the burst's (events `0..burst`, `--producers` × `--batch`,
/// no backlog cap) and the quiet tenant's (the events after it, one per transaction at
/// `quiet_rate`).
fn start_publishing(
    ctx: &Ctx,
    url: &str,
    stage: &Stage,
    burst: usize,
    total: usize,
    quiet_rate: f64,
) -> (Producers, Producers) {
    let start = |events: Vec<u32>, producers, batch, pace| {
        let progress = Arc::new(Progress::default());
        let run = ProducerRun {
            url: url.to_owned(),
            producers,
            batch,
            pace,
            deadline: ctx.run_timeout(),
        };
        let task = stage.spawn_producers(run, events, progress.clone());
        Producers { task, progress }
    };
    let unlimited = Pace::Unlimited { backlog: None };
    let (producers, batch) = (ctx.opts.producers, ctx.opts.batch);
    let burst_task = start((0..burst as u32).collect(), producers, batch, unlimited);
    let quiet = Pace::Rate {
        per_sec: quiet_rate,
    };
    let quiet_task = start((burst as u32..total as u32).collect(), 1, 1, quiet);
    (burst_task, quiet_task)
}

/// `burst` events of tenant 0 ("big") on [`KEYS_BIG`] keys, then `total - burst` of tenant 1
/// ("quiet") on its own [`KEYS_QUIET`] keys.
fn burst_workload(burst: usize, total: usize, payload_bytes: usize) -> Workload {
    let mut w = Workload::uniform(total, KEYS_BIG + KEYS_QUIET, payload_bytes);
    w.tenants = vec!["big".into(), "quiet".into()];
    for n in 0..total {
        let h = producers::mix(n as u64 ^ 0x5eed);
        if n < burst {
            w.key_of[n] = (h % KEYS_BIG as u64) as u32;
        } else {
            w.tenant_of[n] = 1;
            w.key_of[n] = KEYS_BIG + (h % KEYS_QUIET as u64) as u32;
        }
    }
    w
}

/// Waits until the burst's deliveries all arrived at the big tenant's two endpoints. Returns
/// (timed out, when the burst's producers had finished publishing, on the receiver's clock);
/// fails when the sidecar exits.
async fn wait_for_burst(
    ctx: &Ctx,
    stage: &mut Stage,
    burst_task: &JoinHandle<anyhow::Result<ProducerStats>>,
    burst_expected: u64,
) -> anyhow::Result<(bool, Option<u64>)> {
    let deadline = Instant::now() + ctx.run_timeout();
    let state = stage.recv.state.clone();
    let big_unique = || {
        (0..QUIET_EP)
            .filter_map(|i| state.counters(i))
            .map(|c| c.unique.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut published_at: Option<u64> = None;
    loop {
        if published_at.is_none() && burst_task.is_finished() {
            published_at = Some(state.now_ns());
        }
        if big_unique() >= burst_expected {
            return Ok((false, published_at));
        }
        if !stage.all_running() {
            anyhow::bail!("isolation-burst: outboxd exited during the run");
        }
        if Instant::now() > deadline {
            return Ok((true, published_at));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (at most 30 s) until `expected` deliveries arrived at the quiet tenant's endpoint.
async fn wait_for_quiet(state: &RecvState, expected: u64) {
    let t_wait = Instant::now();
    while state
        .counters(QUIET_EP)
        .map_or(0, |c| c.unique.load(Ordering::Relaxed))
        < expected
        && t_wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// When the burst started, was published and was delivered, on the receiver's clock (ns).
#[derive(Debug, Clone, Copy)]
struct BurstTimes {
    start: u64,
    published: u64,
    delivered: u64,
}

/// The arrivals of a burst run, sorted out (latencies in ns, commit → receive).
#[derive(Debug, Default)]
struct Split {
    /// The big tenant's arrivals and their latencies.
    big_arrivals: Vec<Arrival>,
    big_ns: Vec<u64>,
    /// The quiet tenant's latencies: all, committed while the burst was published or delivered
    /// (`during`), and of those, before and after its publishing ended.
    quiet_all: Vec<u64>,
    quiet_during: Vec<u64>,
    quiet_during_publish: Vec<u64>,
    quiet_after_publish: Vec<u64>,
    /// (seconds since the burst started at commit, latency in ms to 0.1), every quiet delivery.
    quiet_series: Vec<(f64, f64)>,
}

/// Sorts `arrivals` by tenant and commit time; an arrival whose commit time (`commit_of` its
/// event number) is unknown is left out.
fn split_arrivals(
    arrivals: &[Arrival],
    commit_of: impl Fn(usize) -> Option<u64>,
    t: BurstTimes,
) -> Split {
    let mut s = Split::default();
    for a in arrivals {
        let Some(c) = commit_of(a.n as usize) else {
            continue;
        };
        let l = a.t_ns.saturating_sub(c);
        if (a.ep as usize) == QUIET_EP {
            s.quiet_all.push(l);
            s.quiet_series.push((
                (c as f64 - t.start as f64) / 1e9,
                (l as f64 / 1e6 * 10.0).round() / 10.0,
            ));
            if c >= t.start && c <= t.delivered {
                s.quiet_during.push(l);
                if c <= t.published {
                    s.quiet_during_publish.push(l);
                } else {
                    s.quiet_after_publish.push(l);
                }
            }
        } else {
            s.big_ns.push(l);
            s.big_arrivals.push(*a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(t_ns: u64, n: u32, ep: usize) -> Arrival {
        Arrival {
            t_ns,
            n,
            key: 0,
            ep: ep as u16,
        }
    }

    #[test]
    fn the_burst_is_the_big_tenant_and_the_rest_the_quiet_one_on_keys_of_its_own() {
        let w = burst_workload(50, 80, 100);
        assert_eq!(w.tenants, ["big", "quiet"]);
        assert!((0..50).all(|n| w.tenant_of[n] == 0 && w.key_of[n] < KEYS_BIG));
        assert!((50..80).all(|n| w.tenant_of[n] == 1 && w.key_of[n] >= KEYS_BIG));
        assert!(w.key_of.iter().all(|&k| k < KEYS_BIG + KEYS_QUIET));
    }

    #[test]
    fn quiet_deliveries_are_sorted_by_when_they_were_committed() {
        let t = BurstTimes {
            start: 1_000,
            published: 5_000,
            delivered: 9_000,
        };
        // Commit times by event number; event 6 was never committed.
        let commits = [500, 2_000, 6_000, 9_500, 3_000, 4_000];
        let arrivals = [
            arrival(1_500, 0, QUIET_EP), // before the burst
            arrival(2_500, 1, QUIET_EP), // while it was published
            arrival(6_100, 2, QUIET_EP), // while it was delivered
            arrival(9_600, 3, QUIET_EP), // after
            arrival(3_500, 4, 0),
            arrival(4_500, 5, 1),
            arrival(4_600, 6, 1),
        ];
        let s = split_arrivals(&arrivals, |n| commits.get(n).copied(), t);
        assert_eq!(s.quiet_all, [1_000, 500, 100, 100]);
        assert_eq!(s.quiet_during, [500, 100]);
        assert_eq!(s.quiet_during_publish, [500]);
        assert_eq!(s.quiet_after_publish, [100]);
        assert_eq!(s.big_ns, [500, 500]);
        assert_eq!(s.big_arrivals.len(), 2);
        assert_eq!(s.quiet_series[1], (1e-6, 0.0));
    }
}
