//! The database floor: the minimal SQL one delivery needs, run by `--floor-workers`
//! connections ([`super`] says what each statement does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_postgres::{Client, Statement};

use super::DbFloor;
use crate::ctx::Ctx;
use crate::pg::{self, BenchDb};
use crate::producers::{EVENT_TYPES, key_counts, mix};
use crate::run::endpoints::standard_endpoints;

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

/// Resource keys the floor publishes on.
const KEYS: u32 = 10_000;

/// Shared by the floor's workers and the task that measures them.
#[derive(Default)]
struct Counters {
    /// Deliveries recorded.
    done: AtomicU64,
    /// Events routed.
    events_done: AtomicU64,
    stop: AtomicBool,
    /// When a worker found the pre-published events used up (ns since the start; 0: not yet).
    dry_at: AtomicU64,
}

/// What a database floor round measures.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// `secs` seconds after `warm` seconds of warm-up (or until the pre-published events are
    /// used up, without publishing).
    Seconds { warm: u64, secs: u64 },
    /// At the run's size: publish and deliver this many events, measuring the middle 80 %
    /// (from the 10th to the 90th percent of events routed), as steady measures outboxd.
    Events(u64),
}

/// How long a round may go without routing an event before it is given up.
const STALL: Duration = Duration::from_secs(60);

/// Runs the floor's workers over `window`; with `prepublish` events published beforehand
/// (and `with_publish` false), the delivery SQL alone.
pub async fn db_floor(
    ctx: &Ctx,
    with_publish: bool,
    window: Window,
    prepublish: u64,
) -> anyhow::Result<DbFloor> {
    let pad = "x".repeat(ctx.opts.payload_bytes.saturating_sub(80));
    let db = floor_db(ctx, with_publish, &pad, prepublish).await?;
    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let workers = ctx.opts.floor_workers.max(1);
    for wi in 0..workers {
        let job = Job {
            url: db.url.clone(),
            wi,
            workers,
            with_publish,
            pad: pad.clone(),
            t0,
        };
        let counters = counters.clone();
        tasks.spawn(async move { floor_worker(&job, &counters).await });
    }
    match window {
        Window::Seconds { warm, .. } => tokio::time::sleep(Duration::from_secs(warm)).await,
        Window::Events(n) => wait_for_events(&counters, &mut tasks, n / 10).await?,
    }
    let snap0 = db.snapshot().await?;
    let pg0 = ctx.cluster.postgres_cpu_seconds();
    let d0 = counters.done.load(Ordering::Relaxed);
    let e0 = counters.events_done.load(Ordering::Relaxed);
    let m0 = Instant::now();
    match window {
        Window::Events(n) => wait_for_events(&counters, &mut tasks, n - n / 10).await?,
        Window::Seconds { secs, .. } => {
            let end = m0 + Duration::from_secs(secs);
            while Instant::now() < end && counters.dry_at.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let d1 = counters.done.load(Ordering::Relaxed);
    let e1 = counters.events_done.load(Ordering::Relaxed);
    let measured = m0.elapsed().as_secs_f64();
    let pg1 = ctx.cluster.postgres_cpu_seconds();
    let wal1 = db.wal_bytes().await?;
    counters.stop.store(true, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        r.context("floor worker panicked")??;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snap1 = db.snapshot().await?;
    let deliveries = d1 - d0;
    let rows = pg::rows_between(&snap0, &snap1);
    // Rows after the window (the workers' last batches) are few; count the window's share.
    let all_done = counters.done.load(Ordering::Relaxed).max(1);
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

/// Until the workers have routed `n` events. A worker that fails ends the wait with its own
/// error; workers that route nothing for [`STALL`] (a stalled database) end it with one.
async fn wait_for_events(
    c: &Counters,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    n: u64,
) -> anyhow::Result<()> {
    let mut seen = c.events_done.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while seen < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(done) = tasks.try_join_next() {
            c.stop.store(true, Ordering::Relaxed);
            done.context("floor worker panicked")??;
            anyhow::bail!("a floor worker stopped at {seen} of {n} events without an error");
        }
        let now = c.events_done.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() > STALL {
            c.stop.store(true, Ordering::Relaxed);
            anyhow::bail!(
                "the database floor routed no event for {} s at {seen} of {n} events (the database stalled)",
                STALL.as_secs()
            );
        }
    }
    Ok(())
}

/// A fresh database with the standard endpoints (at an address nothing listens on), the
/// routing table the floor's fan-out joins (`bench.routes`: event type → endpoint) and
/// `prepublish` events already published.
async fn floor_db(
    ctx: &Ctx,
    with_publish: bool,
    pad: &str,
    prepublish: u64,
) -> anyhow::Result<BenchDb> {
    let label = if with_publish {
        "floor_db"
    } else {
        "floor_db_only"
    };
    let db = ctx.cluster.fresh_db(label, KEYS).await?;
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
    Ok(db)
}

/// One floor worker's job.
struct Job {
    url: String,
    /// This worker's index among `workers`: it publishes on the keys `k % workers == wi`.
    wi: usize,
    workers: usize,
    with_publish: bool,
    pad: String,
    t0: Instant,
}

/// The floor's statements, prepared on one connection.
struct Statements {
    route: Statement,
    claim: Statement,
    complete: Statement,
    attempts: Statement,
    publish_update: Statement,
    publish_insert: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> anyhow::Result<Statements> {
        Ok(Statements {
            route: client.prepare(ROUTE_SQL).await?,
            claim: client.prepare(CLAIM_SQL).await?,
            complete: client.prepare(COMPLETE_SQL).await?,
            attempts: client.prepare(ATTEMPTS_SQL).await?,
            publish_update: client.prepare(PUBLISH_UPDATE).await?,
            publish_insert: client.prepare(PUBLISH_INSERT).await?,
        })
    }
}

/// Until told to stop: publish (when the job says so), route, then claim and record what was
/// routed. Without publishing, stops when the pre-published events are used up.
async fn floor_worker(job: &Job, c: &Counters) -> anyhow::Result<()> {
    let mut client = outboxd::connect(&job.url).await?;
    let st = Statements::prepare(&client).await?;
    let mut n: u64 = (job.wi as u64) << 40;
    let my_keys: Vec<u32> = (0..KEYS)
        .filter(|k| *k as usize % job.workers == job.wi)
        .collect();
    while !c.stop.load(Ordering::Relaxed) {
        if job.with_publish {
            publish(&mut client, &st, &my_keys, &mut n, &job.pad).await?;
        }
        let row = client.query_one(&st.route, &[]).await?;
        let (routed_events, created): (i64, i64) = (row.get(0), row.get(1));
        c.events_done
            .fetch_add(routed_events as u64, Ordering::Relaxed);
        deliver(&mut client, &st, created, c).await?;
        if !job.with_publish && routed_events == 0 && created == 0 {
            // Pre-published events are used up.
            let _ = c.dry_at.compare_exchange(
                0,
                job.t0.elapsed().as_nanos() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            break;
        }
    }
    Ok(())
}

/// 8 application transactions of 50 events, like the producers: each bumps its resources'
/// versions and inserts its events. `n` numbers the events.
async fn publish(
    client: &mut Client,
    st: &Statements,
    my_keys: &[u32],
    n: &mut u64,
    pad: &str,
) -> anyhow::Result<()> {
    for _ in 0..8 {
        let mut batch_keys = Vec::with_capacity(50);
        let mut types = Vec::with_capacity(50);
        let mut rkeys = Vec::with_capacity(50);
        let mut payloads = Vec::with_capacity(50);
        for _ in 0..50 {
            let h = mix(*n);
            let k = my_keys[(h % my_keys.len().max(1) as u64) as usize];
            batch_keys.push(k as i32);
            types.push(EVENT_TYPES[((h >> 40) % 10) as usize]);
            rkeys.push(format!("res:{k}"));
            payloads.push(format!(r#"{{"n":{n},"k":{k},"s":0,"t":0,"pad":"{pad}"}}"#));
            *n += 1;
        }
        let (ids, counts) = key_counts(batch_keys);
        let tx = client.transaction().await?;
        tx.query(&st.publish_update, &[&ids, &counts]).await?;
        tx.execute(&st.publish_insert, &[&types, &rkeys, &payloads])
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Claims due deliveries 256 at a time and records them as delivered (one transaction per
/// batch), until the `created` ones are done, none are due, or the workers are told to stop.
async fn deliver(
    client: &mut Client,
    st: &Statements,
    created: i64,
    c: &Counters,
) -> anyhow::Result<()> {
    let mut left = created;
    loop {
        let rows = client.query(&st.claim, &[]).await?;
        if rows.is_empty() {
            return Ok(());
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
        tx.execute(&st.complete, &[&ids, &ccs]).await?;
        tx.execute(&st.attempts, &[&ids, &eids, &eps, &atts])
            .await?;
        tx.commit().await?;
        c.done.fetch_add(ids.len() as u64, Ordering::Relaxed);
        left -= ids.len() as i64;
        if left <= 0 || c.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}
