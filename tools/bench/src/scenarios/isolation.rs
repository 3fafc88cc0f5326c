//! Scenario 5, isolation: healthy endpoints alone vs next to a hanging and a failing one, and a
//! tenant's burst vs a quiet tenant.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::harness::{Sidecar, rows_between};
use crate::producers::{self, EVENT_TYPES, Pace, ProducerRun, Progress, Workload};
use crate::receiver::{Behaviour, CommitLog, EndpointSpec, Receiver};
use crate::report::{Latency, ScenarioReport, fmt_int, fmt_ms};
use crate::run::db::{DbTiming, db_timing_for};
use crate::run::endpoints::endpoint;
use crate::run::{RunResult, RunSpec, check_run, measure, rates};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = if ctx.smoke {
        400
    } else {
        ctx.opts.isolation_events
    } as usize;
    let burst = if ctx.smoke { 3000 } else { ctx.opts.burst } as usize;
    let mut r = ScenarioReport::new(
        "isolation",
        &format!(
            "5. isolation: 8 healthy endpoints alone vs next to a hanging (timeout 2 s) and a failing (500) one, {} events; tenant burst of {} events vs a quiet tenant at {}/s",
            fmt_int(events as f64),
            fmt_int(burst as f64),
            ctx.opts.quiet_rate
        ),
    );
    let all = (1u32 << EVENT_TYPES.len()) - 1;
    let healthy = |n: usize| -> Vec<EndpointSpec> {
        (0..n)
            .map(|i| endpoint(&format!("healthy{i}"), all, 0, Behaviour::Ok, true))
            .collect()
    };
    let mut env = ctx.sidecar_env("isolation");
    env.push(("OUTBOXD_REQUEST_TIMEOUT".into(), "2s".into()));

    // A: alone, then with bad neighbours.
    let mut runs = Vec::new();
    for (label, bad) in [("isolation-alone", false), ("isolation-neighbours", true)] {
        let db = ctx.cluster.fresh_db(label, 10_000).await?;
        let w = Arc::new(Workload::uniform(events, 10_000, ctx.opts.payload_bytes));
        let mut specs = healthy(8);
        if bad {
            specs.push(endpoint(
                "hanging",
                all,
                0,
                Behaviour::Hang(Duration::from_secs(10)),
                false,
            ));
            specs.push(endpoint("failing", all, 0, Behaviour::Fail, false));
        }
        let x = measure(
            ctx,
            &db,
            &mut specs,
            RunSpec {
                sidecar_env: env.clone(),
                ..RunSpec::saturating(ctx, label, events, w)
            },
        )
        .await?;
        db.cleanup().await;
        runs.push(x);
    }
    let (alone, with) = (&runs[0], &runs[1]);
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
        if ctx.smoke { None } else { Some(ratio >= 0.9) },
    );
    let work = |x: &RunResult| {
        x.postgres_cpu_seconds.map(|pg| {
            (pg + x.sidecar.cpu_seconds + x.bench_cpu_seconds) * 1e6
                / x.deliveries_received.max(1) as f64
        })
    };
    if let (Some(a), Some(b)) = (work(alone), work(with)) {
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
    for x in &runs {
        check_run(&mut r, x);
    }
    r.detail("alone", alone);
    r.detail("with_neighbours", with);
    r.detail("healthy_ratio", ratio);

    // B: tenant burst.
    let b = tenant_burst(ctx, burst).await?;
    r.section(format!(
        "tenant burst ({} events, 2 endpoints) vs quiet tenant ({}/s, 1 endpoint)",
        fmt_int(burst as f64),
        ctx.opts.quiet_rate
    ));
    r.row(
        "burst: publish time (s) / delivered in (s)",
        format!("{:.1} / {:.1}", b.burst_publish_seconds, b.burst_seconds),
    );
    r.row(
        "burst deliveries/s (middle 80 %)",
        fmt_int(b.burst_deliveries_per_second),
    );
    r.row(
        "quiet tenant deliveries during the burst",
        b.quiet_during.count.to_string(),
    );
    r.target(
        "quiet tenant p99 during the burst",
        format!("{} ms", fmt_ms(b.quiet_during.p99_ms)),
        "< 1000 ms",
        if b.quiet_during.count == 0 {
            None
        } else {
            Some(b.quiet_during.p99_ms < 1000.0)
        },
    );
    r.row("quiet tenant latency (during)", b.quiet_during.short());
    r.row(
        "  committed while the burst was being published",
        format!(
            "{} ({})",
            b.quiet_during_publish.short(),
            b.quiet_during_publish.count
        ),
    );
    r.row(
        "  committed after it was published",
        format!(
            "{} ({})",
            b.quiet_after_publish.short(),
            b.quiet_after_publish.count
        ),
    );
    r.row(
        "quiet tenant route delay p50/p99 (db)",
        format!(
            "{} / {} ms",
            fmt_ms(b.quiet_db.route_p50_ms),
            fmt_ms(b.quiet_db.route_p99_ms)
        ),
    );
    r.row(
        "quiet tenant claim delay p50/p99 (db)",
        format!(
            "{} / {} ms",
            fmt_ms(b.quiet_db.claim_p50_ms),
            fmt_ms(b.quiet_db.claim_p99_ms)
        ),
    );
    r.row(
        "sidecar peak RSS during the burst",
        format!("{:.1} MB", b.run.sidecar.peak_rss_mb),
    );
    for f in &b.failures {
        r.fail(f.clone());
    }
    r.detail("tenant_burst", &b);
    Ok(r)
}

#[derive(Debug, Default, Serialize)]
struct BurstResult {
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

async fn tenant_burst(ctx: &Ctx, burst: usize) -> anyhow::Result<BurstResult> {
    let quiet_rate = ctx.opts.quiet_rate.max(0.1);
    let max_quiet = ((quiet_rate * ctx.run_timeout().as_secs_f64()) as usize).min(1_000_000);
    let keys_big = 10_000u32;
    let keys_quiet = 100u32;
    let total = burst + max_quiet;
    let mut w = Workload::uniform(total, keys_big + keys_quiet, ctx.opts.payload_bytes);
    w.tenants = vec!["big".into(), "quiet".into()];
    for n in 0..total {
        let h = producers::mix(n as u64 ^ 0x5eed);
        if n < burst {
            w.key_of[n] = (h % keys_big as u64) as u32;
        } else {
            w.tenant_of[n] = 1;
            w.key_of[n] = keys_big + (h % keys_quiet as u64) as u32;
        }
    }
    let w = Arc::new(w);
    let all = (1u32 << EVENT_TYPES.len()) - 1;
    let mut specs = vec![
        endpoint("big0", all, 0, Behaviour::Ok, true),
        endpoint("big1", all, 0, Behaviour::Ok, true),
        endpoint("quiet", all, 1, Behaviour::Ok, true),
    ];
    let db = ctx
        .cluster
        .fresh_db("isolation_burst", keys_big + keys_quiet)
        .await?;
    // The burst is one measured run with no backlog cap; the quiet tenant publishes at its
    // rate next to it until the burst is delivered.
    let base = Instant::now();
    let commits = Arc::new(CommitLog::new(base, w.len()));
    let recv = Receiver::start(specs.clone(), w.len(), w.keys as usize, base).await?;
    db.register_endpoints(
        &mut specs,
        &w.tenants,
        |i| recv.url(i),
        ctx.opts.max_in_flight,
    )
    .await?;
    let specs_arc = Arc::new(specs.clone());
    let mut env = ctx.sidecar_env("isolation-burst");
    env.push(("OUTBOXD_REQUEST_TIMEOUT".into(), "2s".into()));
    let log = ctx.log_path("isolation-burst");
    let snap0 = db.snapshot().await?;
    let mut sidecar = Sidecar::start(&ctx.outboxd, &db.url, &env, log).await?;
    let sc_cpu0 = sidecar.cpu_seconds();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let burst_expected =
        w.expected_tracked(&(0..burst as u32).collect::<Vec<_>>(), &specs_arc[..2]);
    let t_start = recv.state.now_ns();
    let burst_progress = Arc::new(Progress::default());
    let quiet_progress = Arc::new(Progress::default());
    let spawn = |events: Vec<u32>, run: ProducerRun, progress: Arc<Progress>| {
        let (w, specs_arc, commits, st) = (
            w.clone(),
            specs_arc.clone(),
            commits.clone(),
            recv.state.clone(),
        );
        tokio::spawn(async move {
            producers::run(&run, w, events, specs_arc, commits, st, progress).await
        })
    };
    let burst_task = spawn(
        (0..burst as u32).collect(),
        ProducerRun {
            url: db.url.clone(),
            producers: ctx.opts.producers,
            batch: ctx.opts.batch,
            pace: Pace::Unlimited { backlog: None },
            deadline: ctx.run_timeout(),
        },
        burst_progress.clone(),
    );
    let quiet_task = spawn(
        (burst as u32..total as u32).collect(),
        ProducerRun {
            url: db.url.clone(),
            producers: 1,
            batch: 1,
            pace: Pace::Rate {
                per_sec: quiet_rate,
            },
            deadline: ctx.run_timeout(),
        },
        quiet_progress.clone(),
    );
    // Wait until the burst's deliveries all arrived.
    let deadline = Instant::now() + ctx.run_timeout();
    let quiet_idx = 2usize;
    let big_unique = |st: &crate::receiver::RecvState| {
        (0..2)
            .filter_map(|i| st.counters(i))
            .map(|c| c.unique.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut timed_out = false;
    let mut burst_published_at: Option<u64> = None;
    loop {
        if burst_published_at.is_none() && burst_task.is_finished() {
            burst_published_at = Some(recv.state.now_ns());
        }
        if big_unique(&recv.state) >= burst_expected {
            break;
        }
        if !sidecar.is_running() {
            anyhow::bail!("isolation-burst: outboxd exited during the run");
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t_burst_done = recv.state.now_ns();
    burst_progress.stop.store(true, Ordering::Relaxed);
    quiet_progress.stop.store(true, Ordering::Relaxed);
    let burst_stats = burst_task.await.context("burst producers")??;
    let quiet_stats = quiet_task.await.context("quiet producer")??;
    // Let the last quiet events arrive.
    let quiet_expected = quiet_progress.published_tracked.load(Ordering::Relaxed);
    let t_wait = Instant::now();
    while recv
        .state
        .counters(quiet_idx)
        .map_or(0, |c| c.unique.load(Ordering::Relaxed))
        < quiet_expected
        && t_wait.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t_end = recv.state.now_ns();
    let sc = sidecar.stop(sc_cpu0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap1 = db.snapshot().await?;
    let (states, unrouted) = db.outcome().await?;
    let quiet_db = db_timing_for(&db, 0, 0, Some("quiet")).await?;

    let mut arrivals = recv.state.take_arrivals();
    arrivals.sort_unstable_by_key(|a| a.t_ns);
    let (mut big_lat, mut quiet_during, mut quiet_all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut quiet_pub, mut quiet_after) = (Vec::new(), Vec::new());
    let mut quiet_series = Vec::new();
    let published_at = burst_published_at.unwrap_or(t_burst_done);
    let mut big_arrivals = Vec::new();
    for a in &arrivals {
        let Some(c) = commits.get(a.n as usize) else {
            continue;
        };
        let l = a.t_ns.saturating_sub(c);
        if (a.ep as usize) == quiet_idx {
            quiet_all.push(l);
            quiet_series.push((
                (c as f64 - t_start as f64) / 1e9,
                (l as f64 / 1e6 * 10.0).round() / 10.0,
            ));
            if c >= t_start && c <= t_burst_done {
                quiet_during.push(l);
                if c <= published_at {
                    quiet_pub.push(l);
                } else {
                    quiet_after.push(l);
                }
            }
        } else {
            big_lat.push(l);
            big_arrivals.push(*a);
        }
    }
    let (burst_rate, _, _) = rates(&big_arrivals, t_start, t_burst_done);
    let mut lost = 0u64;
    let mut lost_samples = Vec::new();
    for n in 0..total {
        if commits.get(n).is_none() {
            continue;
        }
        for (i, s) in specs_arc.iter().enumerate() {
            if s.tenant == w.tenant_of[n] && !recv.state.seen(i, n) {
                lost += 1;
                if lost_samples.len() < 10 {
                    lost_samples.push(format!("event n={n} at endpoint {}", s.name));
                }
            }
        }
    }
    let run = RunResult {
        label: "isolation-burst".into(),
        events_published: burst_stats.events + quiet_stats.events,
        deliveries_expected: burst_expected + quiet_expected,
        deliveries_received: arrivals.len() as u64,
        seconds: (t_end - t_start) as f64 / 1e9,
        sidecar: sc,
        rows: rows_between(&snap0, &snap1),
        wal_bytes: snap1.wal_bytes - snap0.wal_bytes,
        receiver: recv.state.totals(),
        lost,
        lost_samples,
        violation_samples: recv.state.violation_samples(),
        delivery_states: states,
        unrouted_events: unrouted,
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
        burst_latency: Latency::from_ns(&mut big_lat),
        quiet_events: quiet_stats.events,
        quiet_during: Latency::from_ns(&mut quiet_during),
        quiet_during_publish: Latency::from_ns(&mut quiet_pub),
        quiet_after_publish: Latency::from_ns(&mut quiet_after),
        quiet_all: Latency::from_ns(&mut quiet_all),
        quiet_db,
        quiet_series,
        failures: run.failures(),
        run,
    })
}
