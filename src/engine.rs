//! The engine: wires the services of one replica together and runs them until shutdown.
//!
//! Tasks: the LISTEN connection (wake-ups), the router, the claimer (which spawns one worker
//! per delivery), the completer, the lease rescuer, the stats loop and the HTTP listener
//! (`/metrics`, `/healthz`, `/readyz`, the admin API `/v1`). They share [`Shared`] and watch one
//! [`CancellationToken`]; SIGTERM in `main` cancels it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogHandle};
use crate::config::Config;
use crate::db::{self, DbError};
use crate::delivery::http::{Sender, SenderConfig};
use crate::dispatch::{self, Capacity};
use crate::router;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// State shared by every task of one replica.
pub struct Shared {
    pub config: Config,
    pub pool: deadpool_postgres::Pool,
    pub catalog: CatalogHandle,
    pub sender: Sender,
    /// Wakes the claimer: deliveries became ready or capacity was freed.
    pub work_ready: Notify,
    /// Wakes the router: events were published.
    pub events_ready: Notify,
    /// Wakes the catalog reloader: endpoints or subscriptions changed.
    pub config_changed: Notify,
    pub(crate) capacity: Mutex<Capacity>,
    /// Bounds memory: large payloads are loaded by at most this many workers at once.
    pub big_payloads: Semaphore,
}

impl Shared {
    /// Reloads endpoints and subscriptions now.
    pub async fn reload_catalog(&self) {
        let result = async {
            let client = self.pool.get().await?;
            Ok::<_, DbError>(Catalog::load(&**client).await?)
        }
        .await;
        match result {
            Ok(c) => {
                tracing::debug!(
                    version = c.version,
                    endpoints = c.endpoint_count(),
                    "catalog loaded"
                );
                self.catalog.set(c);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reload endpoints; keeping the previous ones")
            }
        }
    }
}

/// A running replica.
pub struct Engine {
    /// Where `/metrics`, `/healthz` and `/readyz` listen (useful with port 0).
    pub listen_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Engine {
    /// Checks the database, binds the listener and starts every task.
    pub async fn start(config: Config) -> Result<Engine, EngineError> {
        let prom = crate::metrics::handle();
        let mut client = db::connect(&config.database_url).await?;
        if config.migrate {
            db::migrate(&mut client).await?;
        } else {
            db::check_schema(&client).await?;
        }
        let catalog = Catalog::load(&client).await.map_err(DbError::from)?;
        drop(client);

        let pool = db::pool(&config.database_url, config.db_pool_size)?;
        let sender = Sender::new(SenderConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_payload_bytes,
            allow_networks: config.allow_networks.clone(),
            user_agent: format!("outboxd/{}", env!("CARGO_PKG_VERSION")),
        })
        .map_err(|e| EngineError::Http(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| EngineError::Listen {
                addr: config.listen,
                source,
            })?;
        let listen_addr = listener
            .local_addr()
            .map_err(|source| EngineError::Listen {
                addr: config.listen,
                source,
            })?;

        let shared = Arc::new(Shared {
            config,
            pool,
            catalog: CatalogHandle::default(),
            sender,
            work_ready: Notify::new(),
            events_ready: Notify::new(),
            config_changed: Notify::new(),
            capacity: Mutex::new(Capacity::default()),
            big_payloads: Semaphore::new(4),
        });
        shared.catalog.set(catalog);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(shared, listener, prom, shutdown.clone()));
        tracing::info!(listen = %listen_addr, "outboxd started");
        Ok(Engine {
            listen_addr,
            shutdown,
            task,
        })
    }

    /// Cancelling this token stops the engine gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops gracefully and waits until everything is written.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the engine stopped (after its token was cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn run(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    prom: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    // Background services stop with `background`, after the claimer and completer are done.
    let background = CancellationToken::new();
    let services = vec![
        tokio::spawn(listen(shared.clone(), background.clone())),
        tokio::spawn(route_loop(shared.clone(), shutdown.clone())),
        tokio::spawn(reload_loop(shared.clone(), background.clone())),
        tokio::spawn(crate::maintenance::rescue_leases(
            shared.clone(),
            (shared.config.lease / 4).clamp(Duration::from_millis(500), Duration::from_secs(10)),
            background.clone(),
        )),
        tokio::spawn(crate::maintenance::retention(
            shared.clone(),
            background.clone(),
        )),
        tokio::spawn(crate::maintenance::stats(
            shared.clone(),
            Duration::from_secs(10),
            background.clone(),
        )),
        tokio::spawn(crate::admin::serve(
            listener,
            shared.clone(),
            prom,
            background.clone(),
        )),
    ];

    let (done_tx, done_rx) = mpsc::channel(shared.config.concurrency.max(16));
    let completer = tokio::spawn(dispatch::completer(shared.clone(), done_rx));
    dispatch::claimer(shared.clone(), done_tx, shutdown.clone()).await;
    // All workers are finished or aborted and every sender is dropped: the completer writes
    // what is left and ends. If the database is gone it cannot; leases then expire.
    let grace = shared.config.shutdown_grace.max(Duration::from_secs(1));
    let abort = completer.abort_handle();
    if tokio::time::timeout(grace, completer).await.is_err() {
        tracing::warn!("could not record the last outcomes in time; their leases will expire");
        abort.abort();
    }
    background.cancel();
    for s in services {
        let _ = s.await;
    }
    tracing::info!("outboxd stopped");
}

/// The router loop: route while there is a backlog, then wait for a notification or the
/// poll interval. After routing something it re-checks a few times quickly, to catch
/// transactions that were committing meanwhile (their INSERT saw a backlog and so did not
/// send a NOTIFY).
async fn route_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let batch = shared.config.route_batch;
    let max_deliveries = batch.saturating_mul(10).max(1000);
    let mut backoff = Duration::from_millis(100);
    let mut recheck = 0u32;
    let mut tenant_cursor = String::new();
    while !shutdown.is_cancelled() {
        let result = match shared.pool.get().await {
            Ok(mut client) => router::route_once(
                &mut client,
                &shared.catalog,
                &mut tenant_cursor,
                batch,
                max_deliveries,
            )
            .await
            .map_err(DbError::from),
            Err(e) => Err(e.into()),
        };
        let wait = match result {
            Ok(stats) => {
                backoff = Duration::from_millis(100);
                if stats.events > 0 {
                    metrics::counter!("outboxd_events_routed_total").increment(stats.events as u64);
                    metrics::counter!("outboxd_deliveries_created_total")
                        .increment(stats.deliveries as u64);
                }
                if stats.ready > 0 {
                    shared.work_ready.notify_one();
                }
                if stats.busy {
                    Some(shared.config.poll_interval)
                } else if stats.events >= batch {
                    recheck = 0;
                    None
                } else if stats.events > 0 {
                    recheck = 3;
                    Some(Duration::from_millis(2))
                } else if recheck > 0 {
                    recheck -= 1;
                    Some(Duration::from_millis(5 << (2 - recheck.min(2))))
                } else {
                    Some(shared.config.poll_interval)
                }
            }
            Err(e) => {
                metrics::counter!("outboxd_db_errors_total", "task" => "router").increment(1);
                tracing::warn!(error = %e, "routing failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(backoff)
            }
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.events_ready.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn reload_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = shared.config_changed.notified() => {}
            // Also catch changes made while the LISTEN connection was down.
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        shared.reload_catalog().await;
    }
}

/// Keeps one connection LISTENing and turns notifications into wake-ups; reconnects forever.
async fn listen(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = listen_once(&shared, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
        }
        // Anything may have happened while we were deaf.
        shared.events_ready.notify_one();
        shared.work_ready.notify_one();
        shared.config_changed.notify_one();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(shared: &Shared, shutdown: &CancellationToken) -> Result<(), DbError> {
    let cfg = db::parse_url(&shared.config.database_url)?;
    let (client, mut conn) = db::connect_with_timeout(&cfg).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.channel().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute("LISTEN outboxd_events; LISTEN outboxd_deliveries; LISTEN outboxd_config;")
        .await?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => { driver.abort(); return Ok(()); }
            msg = rx.recv() => match msg {
                Some(channel) => match channel.as_str() {
                    "outboxd_events" => shared.events_ready.notify_one(),
                    "outboxd_deliveries" => shared.work_ready.notify_one(),
                    "outboxd_config" => shared.config_changed.notify_one(),
                    _ => {}
                },
                None => {
                    return match driver.await {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Ok(()),
                    };
                }
            }
        }
    }
}
