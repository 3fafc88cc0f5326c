//! Producers: ordinary application transactions. Each producer owns one connection and the
//! resource keys `k` with `k % producers == its index` (so one resource is only ever written
//! by one producer, as an application serializing writes per resource would), and per
//! transaction of `batch` events runs
//!
//! ```sql
//! BEGIN;
//! UPDATE bench.resources SET version = version + <events of this key>, updated_at = now()
//!   WHERE id IN (<keys of the batch>) RETURNING id, version;    -- lock the resources
//! INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload)
//!   SELECT … FROM unnest(…);                                     -- one row per event
//! COMMIT;
//! ```
//!
//! The per-resource sequence number in the payload comes from the `version` the UPDATE
//! returns, i.e. from the database in lock (= commit) order. The payload is
//! `{"n": event number, "k": key, "s": sequence, "t": unix µs before the INSERT, "pad": …}`;
//! the commit instant (when `COMMIT` returned, on the bench's monotonic clock) is recorded in
//! memory per event number ([`CommitLog`]) and is what latency is measured from.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::task::JoinSet;

use crate::receiver::{CommitLog, EndpointSpec, RecvState};
use crate::report::Latency;

/// The event types of the workload; endpoints subscribe to a share of them.
pub const EVENT_TYPES: [&str; 10] = [
    "order.created",
    "order.paid",
    "order.shipped",
    "order.cancelled",
    "invoice.created",
    "invoice.paid",
    "invoice.voided",
    "customer.created",
    "customer.updated",
    "refund.created",
];

/// Every event of a run, decided up front: type, key, tenant.
pub struct Workload {
    pub type_of: Vec<u8>,
    pub key_of: Vec<u32>,
    pub tenant_of: Vec<u8>,
    pub tenants: Vec<String>,
    pub keys: u32,
    pub pad: String,
}

/// splitmix64: a cheap deterministic hash for picking types and keys.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Workload {
    /// `n` events of tenant 0, over `keys` keys (uniform), types uniform over [`EVENT_TYPES`].
    pub fn uniform(n: usize, keys: u32, payload_bytes: usize) -> Workload {
        let mut w = Workload {
            type_of: Vec::with_capacity(n),
            key_of: Vec::with_capacity(n),
            tenant_of: vec![0; n],
            tenants: vec!["acme".into()],
            keys,
            pad: "x".repeat(payload_bytes.saturating_sub(80)),
        };
        for i in 0..n as u64 {
            let h = mix(i);
            w.type_of.push((h % EVENT_TYPES.len() as u64) as u8);
            w.key_of.push(((h >> 20) % keys.max(1) as u64) as u32);
        }
        w
    }

    pub fn len(&self) -> usize {
        self.type_of.len()
    }

    /// Event `n` is delivered to `s`, and the run counts it: `s` is tracked, of `n`'s tenant
    /// and subscribed to its type.
    pub fn tracked_at(&self, n: usize, s: &EndpointSpec) -> bool {
        s.tracked && s.tenant == self.tenant_of[n] && s.type_mask & (1 << self.type_of[n]) != 0
    }

    /// Tracked deliveries event `n` produces at `specs`.
    pub fn fanout(&self, n: usize, specs: &[EndpointSpec]) -> u64 {
        specs.iter().filter(|s| self.tracked_at(n, s)).count() as u64
    }

    pub fn expected_tracked(&self, events: &[u32], specs: &[EndpointSpec]) -> u64 {
        events.iter().map(|&n| self.fanout(n as usize, specs)).sum()
    }
}

/// How fast producers publish.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// As fast as they can, pausing while more than `backlog` tracked deliveries are
    /// published but not yet received (`None`: no pause).
    Unlimited { backlog: Option<u64> },
    /// `per_sec` events per second in all (spread over the producers).
    Rate { per_sec: f64 },
}

/// What the producers did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProducerStats {
    pub producers: usize,
    pub batch: usize,
    pub events: u64,
    pub transactions: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub transaction_latency: Latency,
    /// Time spent waiting for the backlog cap, summed over producers.
    pub backlog_wait_seconds: f64,
}

/// Shared progress counters.
#[derive(Default)]
pub struct Progress {
    pub published_events: AtomicU64,
    pub published_tracked: AtomicU64,
    pub stop: AtomicBool,
}

pub struct ProducerRun {
    pub url: String,
    pub producers: usize,
    pub batch: usize,
    pub pace: Pace,
    /// Give up publishing after this long.
    pub deadline: Duration,
}

const UPDATE_SQL: &str = "UPDATE bench.resources r SET version = r.version + c.n, updated_at = now() \
       FROM unnest($1::int[], $2::int[]) AS c(id, n) WHERE r.id = c.id RETURNING r.id, r.version";
const INSERT_SQL: &str = "INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload) \
     SELECT u.t, u.k, u.tn, u.p::jsonb \
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS u(t, k, tn, p, ord) \
      ORDER BY u.ord";

/// Publishes `events` (event numbers of `workload`, in order per key) and returns when all are
/// committed, `progress.stop` is set, or the deadline passes.
pub async fn run(
    cfg: &ProducerRun,
    workload: Arc<Workload>,
    events: Vec<u32>,
    specs: Arc<Vec<EndpointSpec>>,
    commits: Arc<CommitLog>,
    recv: Arc<RecvState>,
    progress: Arc<Progress>,
) -> anyhow::Result<ProducerStats> {
    let p = cfg.producers.max(1);
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); p];
    for n in events {
        lists[(workload.key_of[n as usize] as usize) % p].push(n);
    }
    let t0 = Instant::now();
    let shared = Shared {
        url: cfg.url.clone(),
        workload,
        specs,
        commits,
        recv,
        progress,
        batch: cfg.batch.max(1),
        pace: cfg.pace,
        rate_each: match cfg.pace {
            Pace::Rate { per_sec } => Some(per_sec / p as f64),
            Pace::Unlimited { .. } => None,
        },
        end: t0 + cfg.deadline,
    };
    let mut set = JoinSet::new();
    for list in lists {
        if list.is_empty() {
            continue;
        }
        let shared = shared.clone();
        set.spawn(async move { one_producer(&shared, list).await });
    }
    let mut stats = ProducerStats {
        producers: p,
        batch: cfg.batch,
        ..ProducerStats::default()
    };
    let mut tx_lat = Vec::new();
    while let Some(r) = set.join_next().await {
        let one = r.context("producer task panicked")??;
        stats.events += one.events;
        stats.transactions += one.transactions;
        stats.backlog_wait_seconds += one.backlog_wait.as_secs_f64();
        tx_lat.extend(one.tx_ns);
    }
    stats.seconds = t0.elapsed().as_secs_f64();
    stats.events_per_second = stats.events as f64 / stats.seconds.max(1e-9);
    stats.transaction_latency = Latency::from_ns(&mut tx_lat);
    Ok(stats)
}

/// What every producer of a run is given.
#[derive(Clone)]
struct Shared {
    url: String,
    workload: Arc<Workload>,
    specs: Arc<Vec<EndpointSpec>>,
    commits: Arc<CommitLog>,
    recv: Arc<RecvState>,
    progress: Arc<Progress>,
    /// Events per transaction (at least 1).
    batch: usize,
    pace: Pace,
    /// This producer's share of a paced rate (events/s).
    rate_each: Option<f64>,
    /// Publish nothing after this.
    end: Instant,
}

struct OneStats {
    events: u64,
    transactions: u64,
    backlog_wait: Duration,
    tx_ns: Vec<u64>,
}

/// One producer: publishes `list` in transactions of `batch` events, paced.
async fn one_producer(sh: &Shared, list: Vec<u32>) -> anyhow::Result<OneStats> {
    let mut client = outboxd::connect(&sh.url)
        .await
        .context("producer connection")?;
    let upd = client.prepare(UPDATE_SQL).await?;
    let ins = client.prepare(INSERT_SQL).await?;
    let mut out = OneStats {
        events: 0,
        transactions: 0,
        backlog_wait: Duration::ZERO,
        tx_ns: Vec::with_capacity(list.len() / sh.batch + 1),
    };
    let interval = sh
        .rate_each
        .map(|r| Duration::from_secs_f64(sh.batch as f64 / r.max(1e-6)));
    let started = tokio::time::Instant::now();
    let w = &sh.workload;
    for (i, chunk) in list.chunks(sh.batch).enumerate() {
        if sh.progress.stop.load(Ordering::Relaxed) || Instant::now() >= sh.end {
            break;
        }
        match (sh.pace, interval) {
            (Pace::Rate { .. }, Some(iv)) => {
                tokio::time::sleep_until(started + iv * i as u32).await;
            }
            (Pace::Unlimited { backlog: Some(cap) }, _) => {
                out.backlog_wait += wait_for_backlog(sh, cap).await;
            }
            _ => {}
        }
        // Keys of this batch, sorted (the lock order), with their event counts.
        let (ids, counts) = key_counts(chunk.iter().map(|&n| w.key_of[n as usize] as i32));
        let t_tx = Instant::now();
        let tx = client.transaction().await?;
        let rows = tx.query(&upd, &[&ids, &counts]).await?;
        // Sequence of the first event of each key in this batch.
        let mut next_seq: HashMap<u32, i64> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let (id, version): (i32, i64) = (r.get(0), r.get(1));
            let c = ids
                .iter()
                .position(|&k| k == id)
                .map_or(0, |i| counts[i] as i64);
            next_seq.insert(id as u32, version - c + 1);
        }
        let e = EventRows::of(w, chunk, &mut next_seq)?;
        tx.execute(&ins, &[&e.types, &e.keys, &e.tenants, &e.payloads])
            .await?;
        tx.commit().await?;
        let t = sh.commits.now_ns();
        out.tx_ns.push(t_tx.elapsed().as_nanos() as u64);
        let mut tracked = 0;
        for &n in chunk {
            sh.commits.set(n as usize, t);
            tracked += w.fanout(n as usize, &sh.specs);
        }
        out.events += chunk.len() as u64;
        out.transactions += 1;
        sh.progress
            .published_events
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        sh.progress
            .published_tracked
            .fetch_add(tracked, Ordering::Relaxed);
    }
    Ok(out)
}

/// Waits while more than `cap` published deliveries have not arrived yet (or until the
/// deadline or a stop); returns how long it waited.
async fn wait_for_backlog(sh: &Shared, cap: u64) -> Duration {
    let w0 = Instant::now();
    while sh
        .progress
        .published_tracked
        .load(Ordering::Relaxed)
        .saturating_sub(sh.recv.tracked_unique.load(Ordering::Relaxed))
        > cap
        && Instant::now() < sh.end
        && !sh.progress.stop.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    w0.elapsed()
}

/// The distinct keys of a batch, ascending (the order its transaction locks them in), and how
/// many of its events each has.
pub fn key_counts(keys: impl IntoIterator<Item = i32>) -> (Vec<i32>, Vec<i32>) {
    let mut sorted: Vec<i32> = keys.into_iter().collect();
    sorted.sort_unstable();
    let mut ids = Vec::new();
    let mut counts = Vec::new();
    for k in sorted {
        match (ids.last(), counts.last_mut()) {
            (Some(&last), Some(c)) if last == k => *c += 1,
            _ => {
                ids.push(k);
                counts.push(1i32);
            }
        }
    }
    (ids, counts)
}

/// The INSERT's columns for one batch.
struct EventRows<'a> {
    types: Vec<&'static str>,
    keys: Vec<String>,
    tenants: Vec<&'a str>,
    payloads: Vec<String>,
}

impl<'a> EventRows<'a> {
    /// Rows for the events `chunk` of `w`, each taking the next sequence number of its key
    /// from `next_seq`.
    fn of(
        w: &'a Workload,
        chunk: &[u32],
        next_seq: &mut HashMap<u32, i64>,
    ) -> anyhow::Result<EventRows<'a>> {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let mut e = EventRows {
            types: Vec::with_capacity(chunk.len()),
            keys: Vec::with_capacity(chunk.len()),
            tenants: Vec::with_capacity(chunk.len()),
            payloads: Vec::with_capacity(chunk.len()),
        };
        for &n in chunk {
            let n = n as usize;
            let k = w.key_of[n];
            let seq = next_seq
                .get_mut(&k)
                .with_context(|| format!("resource {k} missing from bench.resources"))?;
            let s = *seq;
            *seq += 1;
            e.types.push(EVENT_TYPES[w.type_of[n] as usize]);
            e.keys.push(format!("res:{k}"));
            e.tenants.push(w.tenants[w.tenant_of[n] as usize].as_str());
            e.payloads.push(format!(
                r#"{{"n":{n},"k":{k},"s":{s},"t":{unix_us},"pad":"{}"}}"#,
                w.pad
            ));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_counts_lists_each_key_once_ascending_with_its_events() {
        assert_eq!(
            key_counts([7, 3, 7, 1, 3, 7]),
            (vec![1, 3, 7], vec![1, 2, 3])
        );
        assert_eq!(key_counts([]), (vec![], vec![]));
    }
}
