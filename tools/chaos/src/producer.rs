//! Application-like producers: each transaction locks the resources it changes
//! (`UPDATE resources SET seq = seq + 1 … RETURNING seq`) and publishes one event per change in
//! the same transaction, like SPEC §1's serialized application. Some transactions roll back,
//! some sleep 1–3 s before committing (late commits), and all of them survive PostgreSQL
//! restarts: a transaction that fails before COMMIT is known not to have committed; one whose
//! COMMIT fails has an unknown outcome, settled at the end by looking its event_ids up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::receiver::lock;

/// What became of a transaction, as the producer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutcome {
    Committed,
    /// The producer rolled it back on purpose.
    RolledBack,
    /// An error before COMMIT was sent (e.g. PostgreSQL restarted): not committed.
    Aborted,
    /// COMMIT was sent but its result was lost: committed iff its events exist.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct TxRec {
    pub outcome: TxOutcome,
    /// Slept 1–3 s inside the transaction before finishing it.
    pub long: bool,
    /// When COMMIT returned (or failed).
    pub ended_at: Duration,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EventRec {
    pub event_id: String,
    pub event_type: &'static str,
    pub resource: Option<String>,
    /// The resource's sequence number this transaction produced (`None` for unordered events,
    /// and for events whose UPDATE never returned).
    pub seq: Option<i64>,
    /// Index into [`Ledger::txs`].
    pub tx: usize,
}

/// Everything every producer attempted.
#[derive(Debug, Default)]
pub struct Ledger {
    pub txs: Vec<TxRec>,
    pub events: Vec<EventRec>,
}

struct ProducerConfig {
    pub id: usize,
    pub db_url: String,
    pub resources: Arc<Vec<String>>,
    pub seed: u64,
    /// One permit per transaction (the run's rate limit).
    pub permits: Arc<Semaphore>,
    pub ledger: Arc<Mutex<Ledger>>,
    pub stop: CancellationToken,
}

/// One planned change inside a transaction.
enum Item {
    Resource(String),
    Unordered,
}

async fn run(cfg: ProducerConfig) {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut client: Option<tokio_postgres::Client> = None;
    let mut n = 0u64;
    let mut backoff = Duration::from_millis(50);
    while !cfg.stop.is_cancelled() {
        if !take_permit(&cfg.permits, &cfg.stop).await {
            return;
        }
        let c = match &client {
            Some(c) if !c.is_closed() => c,
            _ => match connect(&cfg.db_url).await {
                Ok(c) => {
                    backoff = Duration::from_millis(50);
                    client.insert(c)
                }
                Err(_) => {
                    client = None;
                    // Give the permit back: nothing was attempted.
                    cfg.permits.add_permits(1);
                    tokio::select! {
                        _ = cfg.stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let items = plan(&mut rng, &cfg.resources);
        let long = rng.random_bool(0.08).then(|| rng.random_range(1000..3000));
        let rollback = rng.random_bool(0.08);
        let pad = rng.random_range(0..400usize);
        let ids: Vec<String> = (0..items.len())
            .map(|k| format!("evt_chaos_{:x}_p{}_{n}_{k}", cfg.seed & 0xffff, cfg.id))
            .collect();
        n += 1;
        let style = rng.random_bool(0.5);
        let mut events = Vec::new();
        let result = transaction(
            c,
            &items,
            &ids,
            long.map(Duration::from_millis),
            rollback,
            style,
            pad,
            cfg.id,
            &mut events,
        )
        .await;
        let (outcome, error) = match result {
            Ok(true) => (TxOutcome::Committed, None),
            Ok(false) => (TxOutcome::RolledBack, None),
            Err(TxError::BeforeCommit(e)) => (TxOutcome::Aborted, Some(e)),
            Err(TxError::AtCommit(e)) => (TxOutcome::Unknown, Some(e)),
        };
        if outcome == TxOutcome::Aborted && !c.is_closed() {
            // E.g. a statement timeout: end the failed transaction before reusing the session.
            let _ = c.batch_execute("ROLLBACK").await;
        }
        if error.is_some() && c.is_closed() {
            client = None;
        }
        let mut ledger = lock(&cfg.ledger);
        let tx = ledger.txs.len();
        ledger.txs.push(TxRec {
            outcome,
            long: long.is_some(),
            ended_at: clock::now(),
            error,
        });
        for (k, (event_type, resource, seq)) in events.into_iter().enumerate() {
            ledger.events.push(EventRec {
                event_id: ids[k].clone(),
                event_type,
                resource,
                seq,
                tx,
            });
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let c = outboxd::connect(url).await?;
    c.batch_execute("SET statement_timeout = '15s'; SET application_name = 'chaos-producer'")
        .await?;
    Ok(c)
}

/// 65 % one resource, 15 % two resources, 10 % the same resource twice, 5 % an unordered
/// event, 5 % an unordered event and a resource. Resources are locked in sorted order (no
/// deadlocks between producers).
fn plan(rng: &mut StdRng, resources: &[String]) -> Vec<Item> {
    let roll = rng.random_range(0..100);
    let mut pick = || resources[rng.random_range(0..resources.len())].clone();
    let mut items = match roll {
        0..65 => vec![Item::Resource(pick())],
        65..80 => {
            let (a, b) = (pick(), pick());
            vec![Item::Resource(a), Item::Resource(b)]
        }
        80..90 => {
            let a = pick();
            vec![Item::Resource(a.clone()), Item::Resource(a)]
        }
        90..95 => vec![Item::Unordered],
        _ => vec![Item::Unordered, Item::Resource(pick())],
    };
    items.sort_by(|a, b| match (a, b) {
        (Item::Resource(x), Item::Resource(y)) => x.cmp(y),
        (Item::Unordered, Item::Resource(_)) => std::cmp::Ordering::Less,
        (Item::Resource(_), Item::Unordered) => std::cmp::Ordering::Greater,
        (Item::Unordered, Item::Unordered) => std::cmp::Ordering::Equal,
    });
    items
}

enum TxError {
    BeforeCommit(String),
    AtCommit(String),
}

type Planned = (&'static str, Option<String>, Option<i64>);

/// Runs one transaction; `Ok(true)` committed, `Ok(false)` rolled back on purpose. `events`
/// gets one entry per item attempted (with its seq once known), whatever happens.
#[allow(clippy::too_many_arguments)]
async fn transaction(
    c: &tokio_postgres::Client,
    items: &[Item],
    ids: &[String],
    long: Option<Duration>,
    rollback: bool,
    publish_fn: bool,
    pad: usize,
    producer: usize,
    events: &mut Vec<Planned>,
) -> Result<bool, TxError> {
    let before = |e: tokio_postgres::Error| TxError::BeforeCommit(error_text(&e));
    c.batch_execute("BEGIN").await.map_err(before)?;
    for (k, item) in items.iter().enumerate() {
        let (event_type, resource) = match item {
            Item::Resource(r) => ("res.updated", Some(r.clone())),
            Item::Unordered => ("misc.note", None),
        };
        events.push((event_type, resource.clone(), None));
        let seq = match &resource {
            Some(r) => {
                let row = c
                    .query_one(
                        "UPDATE resources SET seq = seq + 1 WHERE id = $1 RETURNING seq",
                        &[r],
                    )
                    .await
                    .map_err(before)?;
                let seq = i64::from(row.get::<_, i32>(0));
                if let Some(last) = events.last_mut() {
                    last.2 = Some(seq);
                }
                Some(seq)
            }
            None => None,
        };
        let payload = serde_json::json!({
            "e": ids[k],
            "r": resource,
            "seq": seq,
            "p": producer,
            "pad": "x".repeat(pad),
        });
        if publish_fn {
            c.execute(
                "SELECT outbox.publish($1, $2, resource_key => $3, event_id => $4)",
                &[&event_type, &payload, &resource, &ids[k]],
            )
            .await
            .map_err(before)?;
        } else {
            c.execute(
                "INSERT INTO outbox.events (event_id, event_type, resource_key, payload)
                 VALUES ($1, $2, $3, $4)",
                &[&ids[k], &event_type, &resource, &payload],
            )
            .await
            .map_err(before)?;
        }
    }
    if let Some(d) = long {
        // Holds the resources' row locks (and an early event id) while sleeping.
        tokio::time::sleep(d).await;
    }
    if rollback {
        // Whatever ROLLBACK answers, COMMIT was never sent: nothing is committed.
        let _ = c.batch_execute("ROLLBACK").await;
        return Ok(false);
    }
    c.batch_execute("COMMIT")
        .await
        .map_err(|e| TxError::AtCommit(error_text(&e)))?;
    Ok(true)
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Waits for one of [`rate_limiter`]'s permits and uses it up; false when `stop` came first.
pub(crate) async fn take_permit(permits: &Semaphore, stop: &CancellationToken) -> bool {
    let permit = tokio::select! {
        _ = stop.cancelled() => return false,
        p = permits.acquire() => p,
    };
    match permit {
        Ok(p) => {
            p.forget();
            true
        }
        Err(_) => false,
    }
}

/// Adds `tps` permits per second to `permits` (keeping at most a quarter second of backlog)
/// until `stop`.
pub(crate) async fn rate_limiter(permits: Arc<Semaphore>, tps: f64, stop: CancellationToken) {
    let tick = Duration::from_millis(20);
    let mut owed = 0.0f64;
    let cap = (tps / 4.0).ceil().max(1.0) as usize;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        owed += tps * tick.as_secs_f64();
        let whole = owed.floor();
        owed -= whole;
        let add = (whole as usize).min(cap.saturating_sub(permits.available_permits()));
        if add > 0 {
            permits.add_permits(add);
        }
    }
}

/// The producers and their rate limiter, sharing one [`Ledger`].
pub struct Producers {
    stop: CancellationToken,
    limiter: tokio::task::JoinHandle<()>,
    sessions: Vec<tokio::task::JoinHandle<()>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Producers {
    /// `n` sessions (at least one) sharing `tps` transactions per second over `resources`;
    /// each draws its seed from `rng`, in order.
    pub fn start(
        n: usize,
        tps: f64,
        db_url: &str,
        resources: Arc<Vec<String>>,
        rng: &mut StdRng,
    ) -> Producers {
        let stop = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(0));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let limiter = tokio::spawn(rate_limiter(permits.clone(), tps, stop.clone()));
        let sessions = (0..n.max(1))
            .map(|id| {
                tokio::spawn(run(ProducerConfig {
                    id,
                    db_url: db_url.to_owned(),
                    resources: resources.clone(),
                    seed: rng.random(),
                    permits: permits.clone(),
                    ledger: ledger.clone(),
                    stop: stop.clone(),
                }))
            })
            .collect();
        Producers {
            stop,
            limiter,
            sessions,
            ledger,
        }
    }

    /// Asks every producer to stop after its current transaction.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits (at most 20 s each) until the producers have finished their transactions. The
    /// ledger is returned shared: a producer that did not finish in time may still record.
    pub async fn finish(self) -> Arc<Mutex<Ledger>> {
        for p in self.sessions {
            if tokio::time::timeout(Duration::from_secs(20), p)
                .await
                .is_err()
            {
                eprintln!("a producer did not finish its transaction within 20 s");
            }
        }
        let _ = self.limiter.await;
        self.ledger
    }
}
