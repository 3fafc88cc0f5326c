//! Inbound webhooks: third parties (Stripe, GitHub, Shopify, payment gateways) POST to
//! outboxd; each request is verified, stored raw and relayed to internal endpoints as an
//! ordinary event, so the delivery engine feeds the workers behind them in order, at their
//! `max_in_flight` and `rate_limit`, with retries, dead deliveries and replay.
//!
//! The path of one request, and the module that owns each step:
//!
//! 1. **listen** ([`listener`]): `POST /in/{source}` on `OUTBOXD_INBOUND_LISTEN`, a listener of
//!    its own with nothing else on it; bounded, deadline-guarded reads (slowloris, floods).
//! 2. **look up** ([`source`]): the source's settings from this replica's in-memory copy of
//!    `outbox.sources`.
//! 3. **admit** ([`request`]): verify ([`verify`]: Standard Webhooks, HMAC-SHA256, GitHub,
//!    Stripe, token, none; constant-time, several secrets during a rotation), then take the
//!    idempotency key, ordering key and event type ([`keys`]); the optional rate limit
//!    ([`limit`]) is checked before the body is even read.
//! 4. **store** ([`writer`]): group commit — the raw request (`outbox.inbound_requests`) and
//!    its event (`outbox.events.request_id`) in one transaction per batch; a duplicate
//!    idempotency key stores nothing. Only then the listener answers 2xx.
//! 5. **relay**: the engine's usual route → claim → deliver; the worker sends the stored body
//!    bytes with their original content type and the original headers under `x-inbound-`
//!    ([`crate::delivery::relay`]), signed by outboxd.
//!
//! Around it: replay is `outbox.replay_source()` (SQL, and `POST /v1/sources/{name}/replay`
//! in [`crate::admin`]); the audit is the view `outbox.inbound_log`; retention of stored
//! requests runs with the engine's ([`crate::maintenance`]); the schema is
//! `migrations/V11__inbound.sql` and the queries `sql/inbound/`.

pub(crate) mod keys;
pub(crate) mod limit;
pub(crate) mod listener;
pub(crate) mod request;
pub(crate) mod source;
pub(crate) mod verify;
pub(crate) mod writer;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::InboundConfig;
use crate::db::{Conn, Connector, DbError, Pooler};
use crate::replica::Replica;
use limit::Limiter;
use source::Sources;

/// How often the sources are reloaded without a notification.
const SOURCES_RELOAD: Duration = Duration::from_secs(30);

/// The inbound listener's own connection pool.
#[derive(Clone)]
pub(crate) struct Db {
    pool: deadpool_postgres::Pool,
    pooler: Pooler,
}

impl Db {
    pub(crate) async fn get(&self) -> Result<Conn, DbError> {
        crate::db::get(&self.pool, self.pooler).await
    }
}

/// What the listener's connections share.
pub(crate) struct Inbound {
    pub(crate) sources: Sources,
    /// Its own connections (writers, source look-ups), so inbound load never waits for the
    /// engine's pool, and a slow relay never holds up acknowledgements.
    pub(crate) pool: Db,
    /// Accepted requests waiting for a writer.
    pub(crate) queue: mpsc::Sender<writer::Job>,
    /// Open connections.
    pub(crate) connections: Arc<Semaphore>,
    /// Request-body bytes held in memory.
    pub(crate) buffered: Arc<Semaphore>,
    pub(crate) read_timeout: Duration,
    limiter: Mutex<Limiter>,
}

impl Inbound {
    pub(crate) fn limiter(&self) -> MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the inbound listener until `shutdown`: its writers, its source reloader and the
/// listener itself. On shutdown the listener stops accepting, open requests finish (their
/// batches are committed and answered) within `grace`, then the writers end.
pub(crate) async fn run(
    listener: tokio::net::TcpListener,
    replica: Arc<Replica>,
    connector: Connector,
    shutdown: CancellationToken,
) {
    let config = replica.config.inbound.clone();
    let inbound = match start(&connector, &config) {
        Ok(i) => i,
        Err(e) => {
            tracing::error!(error = %e, "inbound listener cannot start");
            return;
        }
    };
    let (inbound, queue) = inbound;
    match inbound.sources.reload(&inbound.pool).await {
        Ok(n) => tracing::debug!(sources = n, "inbound sources loaded"),
        Err(e) => {
            tracing::warn!(error = %e, "inbound: cannot load the sources yet; looking each one up")
        }
    }
    let queue = Arc::new(tokio::sync::Mutex::new(queue));
    let stored = Arc::new(tokio::sync::Notify::new());
    let writers: Vec<_> = (0..config.writers)
        .map(|_| {
            tokio::spawn(writer::writer(
                inbound.pool.clone(),
                queue.clone(),
                stored.clone(),
            ))
        })
        .collect();
    let waker = tokio::spawn(writer::waker(
        inbound.pool.clone(),
        stored,
        replica.clone(),
        shutdown.clone(),
    ));
    let reloader = tokio::spawn(reload_sources(
        replica.clone(),
        inbound.clone(),
        shutdown.clone(),
    ));
    listener::serve(
        listener,
        inbound.clone(),
        shutdown,
        replica.config.shutdown_grace.max(Duration::from_secs(1)),
    )
    .await;
    // Every connection is done: dropping the last sender lets the writers drain and end.
    let _ = reloader.await;
    let _ = waker.await;
    drop(inbound);
    for w in writers {
        let _ = w.await;
    }
    tracing::info!("inbound listener stopped");
}

fn start(
    connector: &Connector,
    config: &InboundConfig,
) -> Result<(Arc<Inbound>, mpsc::Receiver<writer::Job>), DbError> {
    let pool = Db {
        // The writers, the router waker, and source look-ups.
        pool: connector.pool(config.writers + 2)?,
        pooler: connector.pooler(),
    };
    // One request in flight per connection (HTTP/1.1): the queue never refuses one that
    // has a connection; the bounds are the connection and buffered-bytes limits.
    let (tx, rx) = mpsc::channel(config.max_connections.max(1));
    Ok((
        Arc::new(Inbound {
            sources: Sources::default(),
            pool,
            queue: tx,
            connections: Arc::new(Semaphore::new(config.max_connections)),
            buffered: Arc::new(Semaphore::new(
                config.max_buffered_bytes.min(Semaphore::MAX_PERMITS),
            )),
            read_timeout: config.read_timeout,
            limiter: Mutex::new(Limiter::default()),
        }),
        rx,
    ))
}

/// Reloads the sources when `outbox.sources` changes (and every [`SOURCES_RELOAD`]).
async fn reload_sources(replica: Arc<Replica>, inbound: Arc<Inbound>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = replica.sources_changed.notified() => {}
            _ = tokio::time::sleep(SOURCES_RELOAD) => {}
        }
        match inbound.sources.reload(&inbound.pool).await {
            Ok(_) => inbound
                .limiter()
                .retain(|name| inbound.sources.contains(name)),
            Err(e) => {
                tracing::warn!(error = %e, "inbound: could not reload the sources; keeping the previous ones")
            }
        }
    }
}
