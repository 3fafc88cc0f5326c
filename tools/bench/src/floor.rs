//! The machine's floor, measured on the same machine and cluster as outboxd (scenario 2 reports
//! it; steady reports its ratio to it):
//!
//! * **database floor**: the minimal SQL one delivery needs, batched, run directly by
//!   `--floor-workers` connections against a fresh migrated database (same tables and indexes
//!   as outboxd uses): fan-out (take 400 unrouted events `FOR UPDATE SKIP LOCKED`, insert one
//!   delivery per subscribed endpoint, mark them routed — one statement), claim (256 due
//!   deliveries `FOR UPDATE SKIP LOCKED` → `delivering`, joined with the event for the
//!   payload — one statement), record (mark them succeeded and insert one `outbox.attempts`
//!   row each — one transaction). No HTTP, no lanes. Measured twice: with the producers'
//!   publishing transactions in the loop (the same work the database does during `steady`),
//!   and on pre-published events (delivery SQL alone).
//! * **HTTP floor**: the bench's receiver (signature check, JSON parse, bookkeeping) loaded
//!   by `wrk` with a Lua script POSTing one signed request (if `wrk` is on PATH), else by an
//!   in-process reqwest load generator, 64 connections.
//!
//! The combined floor is `1 / (1/db + 1/http)`: both share the same 2 CPUs, so one delivery
//! costs at least the database's time plus the HTTP exchange's time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::harness;
use crate::producers::{EVENT_TYPES, mix};
use crate::receiver::{Behaviour, Receiver};
use crate::run::endpoints::{endpoint, standard_endpoints};

#[derive(Debug, Clone, Serialize)]
pub struct DbFloor {
    pub with_publish: bool,
    pub deliveries_per_second: f64,
    pub events_per_second: f64,
    pub seconds: f64,
    pub deliveries: u64,
    pub postgres_cpu_ms_per_1000: Option<f64>,
    pub wal_bytes_per_delivery: f64,
    pub rows_per_delivery: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpFloor {
    pub tool: String,
    pub requests_per_second: f64,
    pub seconds: f64,
    pub connections: usize,
    pub bad_signatures: u64,
    pub errors: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloorResult {
    pub db: DbFloor,
    pub db_delivery_only: Option<DbFloor>,
    pub http: HttpFloor,
    /// 1 / (1/db + 1/http), with the database floor that includes publishing.
    pub combined: f64,
}

pub async fn measure_floor(ctx: &Ctx) -> anyhow::Result<FloorResult> {
    let secs = if ctx.smoke {
        2
    } else {
        ctx.opts.floor_seconds.max(1)
    };
    let warm = if ctx.smoke { 1 } else { 2 };
    let db = db_floor(ctx, true, secs, warm, 0).await?;
    println!(
        "  floor: database (publishing included) {:.0} deliveries/s",
        db.deliveries_per_second
    );
    // Enough pre-published events for the delivery-only run at up to twice that rate.
    let events = ((db.deliveries_per_second * (secs + warm) as f64 * 2.0 / 2.5) as u64)
        .clamp(2_000, 3_000_000);
    let db_only = db_floor(ctx, false, secs, warm, events).await?;
    println!(
        "  floor: database (delivery SQL only) {:.0} deliveries/s",
        db_only.deliveries_per_second
    );
    let http = http_floor(ctx, secs).await?;
    println!(
        "  floor: receiver {:.0} requests/s ({})",
        http.requests_per_second, http.tool
    );
    let combined = 1.0 / (1.0 / db.deliveries_per_second + 1.0 / http.requests_per_second);
    Ok(FloorResult {
        db,
        db_delivery_only: Some(db_only),
        http,
        combined,
    })
}

const ROUTE_SQL: &str = "WITH ev AS ( \
       SELECT id, event_type, resource_key FROM outbox.events \
        WHERE routed_at IS NULL ORDER BY id LIMIT 400 FOR UPDATE SKIP LOCKED), \
     marked AS ( \
       UPDATE outbox.events e SET routed_at = now() FROM ev WHERE e.id = ev.id RETURNING e.id), \
     ins AS ( \
       INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key) \
       SELECT ev.id, r.endpoint_id, ev.resource_key \
         FROM ev JOIN bench.routes r ON r.event_type = ev.event_type ORDER BY ev.id, r.endpoint_id \
       RETURNING 1) \
     SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM ins)";

const CLAIM_SQL: &str = "WITH picked AS ( \
       SELECT id FROM outbox.deliveries \
        WHERE state = 'pending' AND NOT held AND next_attempt_at <= now() \
        ORDER BY endpoint_id, next_attempt_at LIMIT 256 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox.deliveries d \
        SET state = 'delivering', claim_count = d.claim_count + 1, \
            lease_until = now() + interval '45 seconds', leased_by = 'floor', updated_at = now() \
       FROM picked, outbox.events ev \
      WHERE d.id = picked.id AND ev.id = d.event_pk \
     RETURNING d.id, d.claim_count, d.endpoint_id, d.attempt_count, ev.event_id, ev.payload::text";

const COMPLETE_SQL: &str = "UPDATE outbox.deliveries d \
        SET state = 'succeeded', attempt_count = d.attempt_count + 1, lease_until = NULL, \
            leased_by = NULL, last_status = 204, completed_at = now(), updated_at = now() \
       FROM unnest($1::bigint[], $2::int[]) AS u(id, cc) \
      WHERE d.id = u.id AND d.claim_count = u.cc AND d.state = 'delivering'";

const ATTEMPTS_SQL: &str = "INSERT INTO outbox.attempts (delivery_id, event_id, endpoint_id, attempt, \
            started_at, duration_ms, status_code, response_excerpt, replica) \
     SELECT u.id, u.eid, u.ep, u.att, now(), 1, 204, '', 'floor' \
       FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[]) AS u(id, eid, ep, att)";

const PUBLISH_UPDATE: &str = "UPDATE bench.resources r SET version = r.version + c.n, updated_at = now() \
       FROM unnest($1::int[], $2::int[]) AS c(id, n) WHERE r.id = c.id RETURNING r.id, r.version";
const PUBLISH_INSERT: &str = "INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload) \
     SELECT u.t, u.k, 'acme', u.p::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, k, p)";

async fn db_floor(
    ctx: &Ctx,
    with_publish: bool,
    secs: u64,
    warm: u64,
    prepublish: u64,
) -> anyhow::Result<DbFloor> {
    let keys = 10_000u32;
    let db = ctx
        .cluster
        .fresh_db(
            if with_publish {
                "floor_db"
            } else {
                "floor_db_only"
            },
            keys,
        )
        .await?;
    let mut specs = standard_endpoints(10, 0);
    db.register_endpoints(
        &mut specs,
        &["acme".to_owned()],
        |i| format!("http://127.0.0.1:9/floor/{i}"),
        None,
    )
    .await?;
    db.client
        .batch_execute("CREATE TABLE bench.routes (event_type text, endpoint_id bigint)")
        .await?;
    for s in &specs {
        for (i, t) in EVENT_TYPES.iter().enumerate() {
            if s.type_mask & (1 << i) != 0 {
                db.client
                    .execute("INSERT INTO bench.routes VALUES ($1, $2)", &[&t, &s.db_id])
                    .await?;
            }
        }
    }
    db.client
        .batch_execute("CREATE INDEX ON bench.routes (event_type); ANALYZE bench.routes")
        .await?;
    let pad = "x".repeat(ctx.opts.payload_bytes.saturating_sub(80));
    if prepublish > 0 {
        let types: Vec<&str> = EVENT_TYPES.to_vec();
        db.client
            .execute(
                "INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload) \
                 SELECT ($2::text[])[1 + g % 10], 'res:' || (g % 10000), 'acme', \
                        jsonb_build_object('n', g, 'k', g % 10000, 's', g, 't', 0, 'pad', $3::text) \
                   FROM generate_series(1, $1::bigint) g",
                &[&(prepublish as i64), &types, &pad],
            )
            .await?;
        db.client
            .batch_execute("VACUUM ANALYZE outbox.events")
            .await?;
    }

    let done = Arc::new(AtomicU64::new(0));
    let events_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let dry_at = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let workers = ctx.opts.floor_workers.max(1);
    for wi in 0..workers {
        let (url, done, events_done, stop, dry_at, pad) = (
            db.url.clone(),
            done.clone(),
            events_done.clone(),
            stop.clone(),
            dry_at.clone(),
            pad.clone(),
        );
        tasks.spawn(async move {
            floor_worker(
                &url,
                wi,
                workers,
                keys,
                with_publish,
                &pad,
                &done,
                &events_done,
                &stop,
                &dry_at,
                t0,
            )
            .await
        });
    }
    tokio::time::sleep(Duration::from_secs(warm)).await;
    let snap0 = db.snapshot().await?;
    let pg0 = ctx.cluster.postgres_cpu_seconds();
    let d0 = done.load(Ordering::Relaxed);
    let e0 = events_done.load(Ordering::Relaxed);
    let m0 = Instant::now();
    let end = m0 + Duration::from_secs(secs);
    while Instant::now() < end && dry_at.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d1 = done.load(Ordering::Relaxed);
    let e1 = events_done.load(Ordering::Relaxed);
    let measured = m0.elapsed().as_secs_f64();
    let pg1 = ctx.cluster.postgres_cpu_seconds();
    let wal1 = db.wal_bytes().await?;
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        r.context("floor worker panicked")??;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap1 = db.snapshot().await?;
    let deliveries = d1 - d0;
    let rows = harness::rows_between(&snap0, &snap1);
    // Rows after the window (the workers' last batches) are few; count the window's share.
    let all_done = done.load(Ordering::Relaxed).max(1);
    let share = deliveries as f64 / (all_done - d0).max(1) as f64;
    db.cleanup().await;
    Ok(DbFloor {
        with_publish,
        deliveries_per_second: deliveries as f64 / measured.max(1e-9),
        events_per_second: (e1 - e0) as f64 / measured.max(1e-9),
        seconds: measured,
        deliveries,
        postgres_cpu_ms_per_1000: pg0
            .zip(pg1)
            .map(|(a, b)| (b - a) * 1e6 / deliveries.max(1) as f64),
        wal_bytes_per_delivery: (wal1 - snap0.wal_bytes) as f64 / deliveries.max(1) as f64,
        rows_per_delivery: rows.total as f64 * share / deliveries.max(1) as f64,
    })
}

#[allow(clippy::too_many_arguments)]
async fn floor_worker(
    url: &str,
    wi: usize,
    workers: usize,
    keys: u32,
    with_publish: bool,
    pad: &str,
    done: &AtomicU64,
    events_done: &AtomicU64,
    stop: &AtomicBool,
    dry_at: &AtomicU64,
    t0: Instant,
) -> anyhow::Result<()> {
    let mut client = outboxd::db::connect(url).await?;
    let route = client.prepare(ROUTE_SQL).await?;
    let claim = client.prepare(CLAIM_SQL).await?;
    let complete = client.prepare(COMPLETE_SQL).await?;
    let attempts = client.prepare(ATTEMPTS_SQL).await?;
    let pub_upd = client.prepare(PUBLISH_UPDATE).await?;
    let pub_ins = client.prepare(PUBLISH_INSERT).await?;
    let mut n: u64 = (wi as u64) << 40;
    let my_keys: Vec<u32> = (0..keys).filter(|k| *k as usize % workers == wi).collect();
    while !stop.load(Ordering::Relaxed) {
        if with_publish {
            // 8 application transactions of 50 events, like the producers.
            for _ in 0..8 {
                let mut batch_keys = Vec::with_capacity(50);
                let mut types = Vec::with_capacity(50);
                let mut rkeys = Vec::with_capacity(50);
                let mut payloads = Vec::with_capacity(50);
                for _ in 0..50 {
                    let h = mix(n);
                    let k = my_keys[(h % my_keys.len().max(1) as u64) as usize];
                    batch_keys.push(k as i32);
                    types.push(EVENT_TYPES[((h >> 40) % 10) as usize]);
                    rkeys.push(format!("res:{k}"));
                    payloads.push(format!(r#"{{"n":{n},"k":{k},"s":0,"t":0,"pad":"{pad}"}}"#));
                    n += 1;
                }
                let mut sorted = batch_keys.clone();
                sorted.sort_unstable();
                let mut ids = Vec::new();
                let mut counts = Vec::new();
                for k in sorted {
                    if ids.last() == Some(&k) {
                        if let Some(c) = counts.last_mut() {
                            *c += 1;
                        }
                    } else {
                        ids.push(k);
                        counts.push(1i32);
                    }
                }
                let tx = client.transaction().await?;
                tx.query(&pub_upd, &[&ids, &counts]).await?;
                tx.execute(&pub_ins, &[&types, &rkeys, &payloads]).await?;
                tx.commit().await?;
            }
        }
        let row = client.query_one(&route, &[]).await?;
        let (routed_events, created): (i64, i64) = (row.get(0), row.get(1));
        events_done.fetch_add(routed_events as u64, Ordering::Relaxed);
        let mut left = created;
        loop {
            let rows = client.query(&claim, &[]).await?;
            if rows.is_empty() {
                break;
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut ccs = Vec::with_capacity(rows.len());
            let mut eps = Vec::with_capacity(rows.len());
            let mut atts = Vec::with_capacity(rows.len());
            let mut eids = Vec::with_capacity(rows.len());
            for r in &rows {
                ids.push(r.get::<_, i64>(0));
                ccs.push(r.get::<_, i32>(1));
                eps.push(r.get::<_, i64>(2));
                atts.push(r.get::<_, i32>(3) + 1);
                eids.push(r.get::<_, String>(4));
                // The payload (column 5) is read, as a sender would.
                let _body: &str = r.get(5);
            }
            let tx = client.transaction().await?;
            tx.execute(&complete, &[&ids, &ccs]).await?;
            tx.execute(&attempts, &[&ids, &eids, &eps, &atts]).await?;
            tx.commit().await?;
            done.fetch_add(ids.len() as u64, Ordering::Relaxed);
            left -= ids.len() as i64;
            if left <= 0 || stop.load(Ordering::Relaxed) {
                break;
            }
        }
        if !with_publish && routed_events == 0 && created == 0 {
            // Pre-published events are used up.
            let _ = dry_at.compare_exchange(
                0,
                t0.elapsed().as_nanos() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            break;
        }
    }
    Ok(())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

async fn http_floor(ctx: &Ctx, secs: u64) -> anyhow::Result<HttpFloor> {
    let all = (1u32 << EVENT_TYPES.len()) - 1;
    let spec = endpoint("floor", all, 0, Behaviour::Ok, false);
    let secret = outboxd::signing::Secret::parse(&spec.secret)
        .map_err(|e| anyhow::anyhow!("floor secret: {e}"))?;
    let recv = Receiver::start(vec![spec], 1, 1, Instant::now()).await?;
    let url = recv.url(0);
    let pad = "x".repeat(ctx.opts.payload_bytes.saturating_sub(80));
    let body = format!(r#"{{"k":0,"n":0,"s":1,"t":0,"pad":"{pad}"}}"#);
    let id = "evt_0000000000000000000000000000";
    // The timestamp is not checked by the receiver (like outboxd's own tests' receivers, it
    // only recomputes the signature).
    let ts = chrono::Utc::now().timestamp();
    let sig = secret.sign(id, ts, body.as_bytes());
    let connections = 64usize;
    if let Some(wrk) = find_on_path("wrk") {
        let script = ctx.out_dir.join("floor-wrk.lua");
        std::fs::create_dir_all(&ctx.out_dir)?;
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\n\
                 wrk.body = '{body}'\n\
                 wrk.headers[\"content-type\"] = \"application/json\"\n\
                 wrk.headers[\"user-agent\"] = \"outboxd/bench\"\n\
                 wrk.headers[\"webhook-id\"] = \"{id}\"\n\
                 wrk.headers[\"webhook-timestamp\"] = \"{ts}\"\n\
                 wrk.headers[\"webhook-signature\"] = \"{sig}\"\n"
            ),
        )?;
        let out = tokio::process::Command::new(&wrk)
            .args([
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{secs}s"),
                "-s",
            ])
            .arg(&script)
            .arg(&url)
            .output()
            .await
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let rps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("could not read wrk's output:\n{text}"))?;
        let errors = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let totals = recv.state.totals();
        return Ok(HttpFloor {
            tool: "wrk -t1".into(),
            requests_per_second: rps,
            seconds: secs as f64,
            connections,
            bad_signatures: totals.bad_signatures,
            errors,
            detail: text,
        });
    }
    // No wrk: an in-process reqwest load generator (shares this process's runtime).
    println!(
        "  floor: wrk not found on PATH (apt-get install -y wrk); using an in-process reqwest load generator"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (client, url, body, sig, ok, errors) = (
            client.clone(),
            url.clone(),
            body.clone(),
            sig.clone(),
            ok.clone(),
            errors.clone(),
        );
        set.spawn(async move {
            while Instant::now() < end {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", &sig)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let secs_f = t0.elapsed().as_secs_f64();
    let totals = recv.state.totals();
    Ok(HttpFloor {
        tool: "reqwest (in-process)".into(),
        requests_per_second: ok.load(Ordering::Relaxed) as f64 / secs_f,
        seconds: secs_f,
        connections,
        bad_signatures: totals.bad_signatures,
        errors: errors.load(Ordering::Relaxed),
        detail: String::new(),
    })
}
