//! Scenarios 1 and 3–6, each a measured run (or several, see `run`) and its report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::Ctx;
use crate::harness::{BenchDb, Sidecar, rows_between};
use crate::producers::{self, EVENT_TYPES, Pace, ProducerRun, Progress, Workload};
use crate::receiver::{Behaviour, CommitLog, EndpointSpec, Receiver};
use crate::report::{Latency, ScenarioReport, fmt_int, fmt_ms};
use crate::run::db::{
    DbTiming, db_timing, db_timing_for, max_ids, reset_statements, top_statements,
};
use crate::run::endpoints::{endpoint, standard_endpoints};
use crate::run::{RunResult, RunSpec, check_run, measure, rates, run_rows, timeout};

// ---------------------------------------------------------------------------------------------
// 1. steady

pub async fn steady(ctx: &mut Ctx) -> anyhow::Result<ScenarioReport> {
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

    if !ctx.opts.no_floor && ctx.floor.is_none() {
        ctx.floor = Some(crate::floor::measure_floor(ctx).await?);
    }

    r.target(
        "deliveries/s sustained (middle 80 %)",
        fmt_int(x.deliveries_per_second),
        "≥ 10 000",
        Some(x.deliveries_per_second >= 10_000.0),
    );
    if let Some(f) = &ctx.floor {
        let ratio = x.deliveries_per_second / f.combined;
        r.target(
            "ratio to the combined floor",
            format!("{:.0} % of {}", ratio * 100.0, fmt_int(f.combined)),
            "≥ 50 %",
            Some(ratio >= 0.5),
        );
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
    ctx.steady_line = Some(line);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// 4. latency

pub async fn latency(ctx: &mut Ctx) -> anyhow::Result<ScenarioReport> {
    let (rate, secs) = if ctx.smoke {
        (ctx.opts.rate, 3)
    } else {
        (ctx.opts.rate, ctx.opts.seconds)
    };
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
        format!(
            "{} / {} ms",
            fmt_ms(timing.route_p50_ms),
            fmt_ms(timing.route_p99_ms)
        ),
    );
    r.row(
        "  of which: routing tx start → HTTP attempt start p50/p99",
        format!(
            "{} / {} ms",
            fmt_ms(timing.claim_p50_ms),
            fmt_ms(timing.claim_p99_ms)
        ),
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

// ---------------------------------------------------------------------------------------------
// 5. isolation

pub async fn isolation(ctx: &mut Ctx) -> anyhow::Result<ScenarioReport> {
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
    let max_quiet = ((quiet_rate * timeout(ctx).as_secs_f64()) as usize).min(1_000_000);
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
    let log = ctx.out_dir.join("logs").join("isolation-burst.log");
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
            deadline: timeout(ctx),
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
            deadline: timeout(ctx),
        },
        quiet_progress.clone(),
    );
    // Wait until the burst's deliveries all arrived.
    let deadline = Instant::now() + timeout(ctx);
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

// ---------------------------------------------------------------------------------------------
// 6. hot keys

pub async fn hotkeys(ctx: &mut Ctx) -> anyhow::Result<ScenarioReport> {
    let events = if ctx.smoke {
        600
    } else {
        ctx.opts.hotkey_events
    } as usize;
    let mut r = ScenarioReport::new(
        "hotkeys",
        &format!(
            "6. hot keys: {} events on 10 keys vs 10 000 keys, 10 endpoints (fan-out 2.5)",
            fmt_int(events as f64)
        ),
    );
    let mut out = Vec::new();
    for keys in [10u32, 10_000] {
        let label = format!("hotkeys-{keys}");
        let db = ctx.cluster.fresh_db(&label, keys).await?;
        let w = Arc::new(Workload::uniform(events, keys, ctx.opts.payload_bytes));
        let mut specs = standard_endpoints(10, 0);
        let x = measure(
            ctx,
            &db,
            &mut specs,
            RunSpec::saturating(ctx, &label, events, w),
        )
        .await?;
        db.cleanup().await;
        // Per key and per lane (endpoint × key): deliveries / (last − first arrival).
        let mut per_key: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        let mut per_lane: BTreeMap<(u16, u32), (u64, u64, u64)> = BTreeMap::new();
        for a in &x.arrivals {
            let e = per_key.entry(a.key).or_insert((0, a.t_ns, a.t_ns));
            e.0 += 1;
            e.2 = a.t_ns;
            let l = per_lane.entry((a.ep, a.key)).or_insert((0, a.t_ns, a.t_ns));
            l.0 += 1;
            l.2 = a.t_ns;
        }
        let rate = |(n, a, b): &(u64, u64, u64)| {
            if *n < 2 || b <= a {
                None
            } else {
                Some((*n - 1) as f64 / ((b - a) as f64 / 1e9))
            }
        };
        let key_rates: Vec<f64> = per_key.values().filter_map(rate).collect();
        let lane_rates: Vec<f64> = per_lane.values().filter_map(rate).collect();
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let lane_lat = {
            // Time between consecutive deliveries of one lane: the ordered round trip.
            let mut gaps = Vec::new();
            let mut last: BTreeMap<(u16, u32), u64> = BTreeMap::new();
            for a in &x.arrivals {
                if let Some(prev) = last.insert((a.ep, a.key), a.t_ns) {
                    gaps.push(a.t_ns - prev);
                }
            }
            Latency::from_ns(&mut gaps)
        };
        out.push(json!({
            "keys": keys,
            "deliveries_per_second": x.deliveries_per_second,
            "per_key_avg": avg(&key_rates),
            "per_key_min": if key_rates.is_empty() { 0.0 } else { min(&key_rates) },
            "per_lane_avg": avg(&lane_rates),
            "lane_gap": lane_lat,
            "lanes": per_lane.len(),
            "run": &x,
        }));
        r.section(format!("{keys} keys ({} lanes)", per_lane.len()));
        r.row("deliveries/s total", fmt_int(x.deliveries_per_second));
        let per_key_deliveries = x.deliveries_received as f64 / keys as f64;
        if per_key_deliveries >= 20.0 {
            r.row(
                "per key deliveries/s (avg / min)",
                format!(
                    "{:.0} / {:.0}",
                    avg(&key_rates),
                    if key_rates.is_empty() {
                        0.0
                    } else {
                        min(&key_rates)
                    }
                ),
            );
        } else {
            r.row(
                "per key deliveries/s",
                format!("n/a ({per_key_deliveries:.1} deliveries per key)"),
            );
        }
        r.row(
            "per lane (endpoint × key) deliveries/s avg",
            format!("{:.1}", avg(&lane_rates)),
        );
        r.row(
            "gap between consecutive deliveries of a lane",
            lane_lat.short(),
        );
        r.row("commit → receive latency", x.latency.short());
        check_run(&mut r, &x);
    }
    r.detail("runs", out);
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// 3. growth

/// EXPLAIN (ANALYZE, BUFFERS) of the engine's claim query with 1000 due deliveries (100 new
/// events × 10 endpoints) added in a transaction that is rolled back. Returns (plan text, execution ms, parameters used).
pub async fn explain_claim(db: &mut BenchDb) -> anyhow::Result<(String, f64, String)> {
    use tokio_postgres::types::{ToSql, Type};
    let tx = db.client.transaction().await?;
    // 100 fresh events × the 10 bench endpoints = 1000 due deliveries, rolled back below.
    tx.execute(
        "WITH ev AS ( \
           INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, routed_at) \
           SELECT 'order.created', 'explain:' || g, 'acme', jsonb_build_object('n', g), now() \
             FROM generate_series(1, 100) g RETURNING id) \
         INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key) \
         SELECT ev.id, ep.id, NULL FROM ev \
          CROSS JOIN (SELECT id FROM outbox.endpoints WHERE url LIKE '%/ep/%' ORDER BY id LIMIT 10) ep",
        &[],
    )
    .await?;
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", outboxd::sql::CLAIM);
    let stmt = tx.prepare(&sql).await?;
    let types: Vec<Type> = stmt.params().to_vec();
    let known = [
        Type::INT8_ARRAY,
        Type::INT4_ARRAY,
        Type::INT8_ARRAY,
        Type::INT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::INT4,
        Type::INT8,
    ];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let described = if types == known {
        params.push(Box::new(Vec::<i64>::new()));
        params.push(Box::new(Vec::<i32>::new()));
        params.push(Box::new(Vec::<i64>::new()));
        params.push(Box::new(256i64));
        params.push(Box::new(45.0f64));
        params.push(Box::new("bench-explain".to_owned()));
        params.push(Box::new(outboxd::claim::INLINE_PAYLOAD_BYTES));
        params.push(Box::new(0i64));
        "busy={}, counts={}, excluded={}, limit=256, lease=45s, replica='bench-explain', inline=INLINE_PAYLOAD_BYTES, cursor=0".to_owned()
    } else {
        // The claim's parameters changed: fill them by type.
        let mut d = Vec::new();
        for t in &types {
            let (b, s): (Box<dyn ToSql + Sync + Send>, String) = match *t {
                Type::INT8_ARRAY => (Box::new(Vec::<i64>::new()), "{}".into()),
                Type::INT4_ARRAY => (Box::new(Vec::<i32>::new()), "{}".into()),
                Type::TEXT_ARRAY => (Box::new(Vec::<String>::new()), "{}".into()),
                Type::INT8 => (Box::new(256i64), "256".into()),
                Type::INT4 => (
                    Box::new(outboxd::claim::INLINE_PAYLOAD_BYTES),
                    "inline".into(),
                ),
                Type::FLOAT8 => (Box::new(45.0f64), "45".into()),
                Type::TEXT => (
                    Box::new("bench-explain".to_owned()),
                    "'bench-explain'".into(),
                ),
                Type::BOOL => (Box::new(false), "false".into()),
                ref other => anyhow::bail!("claim parameter of unexpected type {other}"),
            };
            params.push(b);
            d.push(s);
        }
        format!("by type: {}", d.join(", "))
    };
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = tx.query(&stmt, &refs).await?;
    tx.rollback().await?;
    let text: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let exec_ms = text
        .iter()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|s| s.trim_end_matches(" ms").parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Ok((text.join("\n"), exec_ms, described))
}

#[derive(Debug, Serialize)]
struct GrowthLevel {
    dimension: String,
    level: u64,
    deliveries_per_second: f64,
    us_per_delivery: f64,
    latency: Latency,
    db: DbTiming,
    claim_explain_ms: f64,
    claim_explain: String,
    claim_params: String,
    sidecar_peak_rss_mb: f64,
    sidecar_cpu_ms_per_1000: f64,
    /// PostgreSQL + sidecar CPU per delivery (µs): the cost, independent of other load.
    cpu_us_per_delivery: Option<f64>,
    /// Other processes' CPU during the run (cores).
    other_cores: Option<f64>,
    setup_seconds: f64,
    run: RunResult,
}

pub async fn growth(ctx: &mut Ctx) -> anyhow::Result<ScenarioReport> {
    let events = if ctx.smoke {
        400
    } else {
        ctx.opts.growth_events
    } as usize;
    let row_levels: Vec<u64> = if ctx.smoke {
        vec![1_000, 10_000]
    } else {
        [10_000u64, 1_000_000, 10_000_000]
            .into_iter()
            .filter(|&l| l <= ctx.opts.max_rows.max(10_000))
            .collect()
    };
    let ep_levels: Vec<u64> = if ctx.smoke {
        vec![10, 200]
    } else {
        [10u64, 1_000, 100_000]
            .into_iter()
            .filter(|&l| l <= ctx.opts.max_endpoints.max(10))
            .collect()
    };
    let mut r = ScenarioReport::new(
        "growth",
        &format!(
            "3. cost growth: {} fresh events (unique keys, fan-out 2.5) on top of {:?} pending rows and {:?} endpoints",
            fmt_int(events as f64),
            row_levels,
            ep_levels
        ),
    );
    let mut levels: Vec<GrowthLevel> = Vec::new();

    // Pending rows: one database, filled level by level.
    {
        let keys = (events as u32).max(1);
        let mut db = ctx.cluster.fresh_db("growth_rows", keys).await?;
        let mut specs = standard_endpoints(10, 0);
        let mut have = 0u64;
        for (li, &level) in row_levels.iter().enumerate() {
            let t0 = Instant::now();
            // Register endpoints (at a dummy URL) before the first preload, so rows can point
            // at them; measure() repoints them at the receiver.
            if li == 0 {
                db.register_endpoints(
                    &mut specs,
                    &["acme".to_owned()],
                    |i| format!("http://127.0.0.1:9/ep/{i}"),
                    ctx.opts.max_in_flight,
                )
                .await?;
            }
            let ids: Vec<i64> = specs.iter().filter_map(|s| s.db_id).collect();
            while have < level {
                let n = (level - have).min(200_000) as i64;
                db.client
                    .execute(
                        "WITH ev AS ( \
                           INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, routed_at) \
                           SELECT 'order.created', 'parked:' || g, 'acme', \
                                  jsonb_build_object('parked', g, 'pad', repeat('x', 150)), now() \
                             FROM generate_series(1, $1::bigint) g \
                           RETURNING id) \
                         INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, next_attempt_at, attempt_count, last_status) \
                         SELECT ev.id, ($2::bigint[])[1 + (ev.id % cardinality($2::bigint[]))], NULL, \
                                now() + interval '3650 days', 1, 503 \
                           FROM ev",
                        &[&n, &ids],
                    )
                    .await
                    .context("preloading pending rows")?;
                have += n as u64;
            }
            for t in ["outbox.events", "outbox.deliveries"] {
                db.client
                    .batch_execute(&format!("VACUUM ANALYZE {t}"))
                    .await?;
            }
            let setup = t0.elapsed().as_secs_f64();
            let lvl =
                growth_level(ctx, &mut db, &mut specs, "rows", level, events, keys, setup).await?;
            levels.push(lvl);
        }
        db.cleanup().await;
    }

    // Endpoints: two layouts, each its own database filled level by level.
    for layout in ["tenants", "one-tenant"] {
        let keys = (events as u32).max(1);
        let mut db = ctx
            .cluster
            .fresh_db(&format!("growth_endpoints_{layout}"), keys)
            .await?;
        let mut specs = standard_endpoints(10, 0);
        db.register_endpoints(
            &mut specs,
            &["acme".to_owned()],
            |i| format!("http://127.0.0.1:9/ep/{i}"),
            ctx.opts.max_in_flight,
        )
        .await?;
        let mut have = 10u64;
        for &level in &ep_levels {
            let t0 = Instant::now();
            while have < level {
                let to = level.min(have + 5_000);
                let sql = if layout == "tenants" {
                    // Another tenant each, subscribed to everything (receives nothing here).
                    "SELECT count(outbox.add_endpoint('http://127.0.0.1:9/noise/' || g, '{*}', 'tenant-' || g, NULL)) \
                       FROM generate_series($1::bigint, $2::bigint) g"
                } else {
                    // Same tenant, subscribed to an event type nobody publishes.
                    "SELECT count(outbox.add_endpoint('http://127.0.0.1:9/noise/' || g, ARRAY['noise.' || g], 'acme', NULL)) \
                       FROM generate_series($1::bigint, $2::bigint) g"
                };
                db.client
                    .query_one(sql, &[&((have + 1) as i64), &(to as i64)])
                    .await
                    .context("adding endpoints")?;
                have = to;
            }
            let setup = t0.elapsed().as_secs_f64();
            let dim = format!("endpoints ({layout})");
            let lvl =
                growth_level(ctx, &mut db, &mut specs, &dim, level, events, keys, setup).await?;
            levels.push(lvl);
        }
        db.cleanup().await;
    }

    // Table.
    let mut cur_dim = String::new();
    for l in &levels {
        if l.dimension != cur_dim {
            cur_dim = l.dimension.clone();
            r.section(format!(
                "{}: deliveries/s | µs per delivery | CPU µs per delivery (pg+sidecar) | e2e p50/p99 ms | route p50/p99 ms | claim p50/p99 ms | claim EXPLAIN ms | RSS MB | other load (cores)",
                l.dimension
            ));
        }
        r.row(
            format!("{} {}", fmt_int(l.level as f64), l.dimension),
            format!(
                "{} | {:.0} | {} | {}/{} | {}/{} | {}/{} | {:.2} | {:.0} | {}",
                fmt_int(l.deliveries_per_second),
                l.us_per_delivery,
                l.cpu_us_per_delivery
                    .map_or("-".to_owned(), |c| format!("{c:.0}")),
                fmt_ms(l.latency.p50_ms),
                fmt_ms(l.latency.p99_ms),
                fmt_ms(l.db.route_p50_ms),
                fmt_ms(l.db.route_p99_ms),
                fmt_ms(l.db.claim_p50_ms),
                fmt_ms(l.db.claim_p99_ms),
                l.claim_explain_ms,
                l.sidecar_peak_rss_mb,
                l.other_cores.map_or("-".to_owned(), |c| format!("{c:.2}"))
            ),
        );
    }
    let ratio_of = |dim: &str| -> Option<(u64, u64, f64, Option<f64>)> {
        let v: Vec<&GrowthLevel> = levels.iter().filter(|l| l.dimension == dim).collect();
        let (first, last) = (v.first()?, v.last()?);
        if v.len() < 2 {
            return None;
        }
        Some((
            first.level,
            last.level,
            last.us_per_delivery / first.us_per_delivery.max(1e-9),
            last.cpu_us_per_delivery
                .zip(first.cpu_us_per_delivery)
                .map(|(b, a)| b / a.max(1e-9)),
        ))
    };
    let cpu_note =
        |c: Option<f64>| c.map_or(String::new(), |c| format!(" (CPU per delivery {c:.2}×)"));
    r.section("flat cost");
    if let Some((a, b, x, c)) = ratio_of("rows") {
        let reached_10m = b >= 10_000_000;
        r.target(
            format!(
                "time per delivery, {} vs {} pending rows",
                fmt_int(b as f64),
                fmt_int(a as f64)
            ),
            format!("{x:.2}×{}", cpu_note(c)),
            if reached_10m {
                "≤ 1.2× (10M vs 10k)".to_owned()
            } else {
                "≤ 1.2× (10M level not run: --max-rows 10000000)".to_owned()
            },
            Some(x <= 1.2),
        );
    }
    for layout in ["tenants", "one-tenant"] {
        let dim = format!("endpoints ({layout})");
        if let Some((a, b, x, c)) = ratio_of(&dim) {
            r.target(
                format!(
                    "time per delivery, {} vs {} endpoints ({layout})",
                    fmt_int(b as f64),
                    fmt_int(a as f64)
                ),
                format!("{x:.2}×{}", cpu_note(c)),
                "≤ 1.2× (flat)",
                Some(x <= 1.2),
            );
        }
    }
    for l in &levels {
        check_run(&mut r, &l.run);
    }
    r.detail("levels", &levels);
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn growth_level(
    ctx: &Ctx,
    db: &mut BenchDb,
    specs: &mut [EndpointSpec],
    dimension: &str,
    level: u64,
    events: usize,
    keys: u32,
    setup_seconds: f64,
) -> anyhow::Result<GrowthLevel> {
    let (plan, exec_ms, params) = explain_claim(db).await?;
    let (ev0, del0) = max_ids(db).await?;
    // Unique keys: no lane waits, so claim delay is the claim path alone.
    let mut w = Workload::uniform(events, keys, ctx.opts.payload_bytes);
    for (n, k) in w.key_of.iter_mut().enumerate() {
        *k = n as u32 % keys;
    }
    let label = format!(
        "growth-{}-{level}",
        dimension
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            .replace("--", "-")
            .trim_end_matches('-')
    );
    let x = measure(
        ctx,
        db,
        specs,
        RunSpec {
            idle_before: Duration::from_millis(300),
            ..RunSpec::saturating(ctx, &label, events, Arc::new(w))
        },
    )
    .await?;
    let timing = db_timing(db, ev0, del0).await?;
    println!(
        "  growth {dimension} {level}: {:.0} deliveries/s, claim EXPLAIN {exec_ms:.2} ms, setup {setup_seconds:.1} s",
        x.deliveries_per_second
    );
    Ok(GrowthLevel {
        dimension: dimension.into(),
        level,
        deliveries_per_second: x.deliveries_per_second,
        us_per_delivery: 1e6 / x.deliveries_per_second.max(1e-9),
        latency: x.latency,
        db: timing,
        claim_explain_ms: exec_ms,
        claim_explain: plan,
        claim_params: params,
        sidecar_peak_rss_mb: x.sidecar.peak_rss_mb,
        sidecar_cpu_ms_per_1000: x.cpu_ms_per_1000(),
        cpu_us_per_delivery: x
            .postgres_cpu_seconds
            .map(|pg| (pg + x.sidecar.cpu_seconds) * 1e6 / x.deliveries_received.max(1) as f64),
        other_cores: x.other_cpu_seconds.map(|o| o / x.wall_seconds.max(1e-9)),
        setup_seconds,
        run: x,
    })
}
