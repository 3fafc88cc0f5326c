//! The engine: starts one replica's tasks and runs them until shutdown.
//!
//! Tasks, all sharing one [`Replica`] and watching a cancellation token:
//!
//! ```text
//!   wakeup::listen ──notify──► router::run ──deliveries──► claim::claimer ──spawns──► worker::deliver (one per delivery)
//!   wakeup::reload_catalog                                      ▲                          │ Completed
//!   maintenance::{rescue_leases, retention, stats}              └──── work_ready ◄── record::recorder
//!   admin::serve (/healthz /readyz /metrics /v1)
//!   inbound::run (POST /in/{source}, when OUTBOXD_INBOUND_LISTEN is set)
//! ```
//!
//! Shutdown (SIGTERM in `main` cancels the token): the router and the claimer stop; the
//! claimer waits for its workers up to the grace period and releases what is left; the
//! recorder writes every outcome it received; then the background services stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::db::{self, DbError};
use crate::delivery::ErrorKind;
use crate::delivery::http::{Sender, SenderConfig};
use crate::replica::Replica;

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

/// A running replica.
pub struct Engine {
    /// Where `/metrics`, `/healthz`, `/readyz` and `/v1` listen (useful with port 0).
    pub listen_addr: SocketAddr,
    /// Where the inbound listener (`POST /in/{source}`) listens, when it is on.
    pub inbound_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Engine {
    /// Checks the database (migrating it when configured to), binds the listener and starts
    /// every task.
    pub async fn start(config: Config) -> Result<Engine, EngineError> {
        let kinds: Vec<&'static str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let prom = crate::metrics::handle(&kinds);
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
        let listen_error = |source| EngineError::Listen {
            addr: config.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(listen_error)?;
        let listen_addr = listener.local_addr().map_err(listen_error)?;
        let inbound = match config.inbound.listen {
            Some(addr) => {
                let inbound_error = |source| EngineError::Listen { addr, source };
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(inbound_error)?;
                let at = l.local_addr().map_err(inbound_error)?;
                Some((l, at))
            }
            None => None,
        };
        let inbound_addr = inbound.as_ref().map(|(_, at)| *at);

        let replica = Arc::new(Replica::new(config, pool, catalog, sender));
        let shutdown = CancellationToken::new();
        let inbound_task = inbound.map(|(l, at)| {
            tracing::info!(inbound = %at, "inbound listener started");
            tokio::spawn(crate::inbound::run(l, replica.clone(), shutdown.clone()))
        });
        let task = tokio::spawn(run(replica, listener, prom, shutdown.clone(), inbound_task));
        tracing::info!(listen = %listen_addr, "outboxd started");
        Ok(Engine {
            listen_addr,
            inbound_addr,
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
    replica: Arc<Replica>,
    listener: tokio::net::TcpListener,
    prom: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
    inbound: Option<JoinHandle<()>>,
) {
    // Background services stop with `background`, after the claimer and recorder are done.
    let background = CancellationToken::new();
    let r = &replica;
    let rescue_every =
        (r.config.lease / 4).clamp(Duration::from_millis(500), Duration::from_secs(10));
    let services = vec![
        tokio::spawn(crate::wakeup::listen(r.clone(), background.clone())),
        tokio::spawn(crate::wakeup::reload_catalog(r.clone(), background.clone())),
        tokio::spawn(crate::router::run(r.clone(), shutdown.clone())),
        tokio::spawn(crate::maintenance::rescue_leases(
            r.clone(),
            rescue_every,
            background.clone(),
        )),
        tokio::spawn(crate::maintenance::retention(r.clone(), background.clone())),
        tokio::spawn(crate::maintenance::stats(r.clone(), background.clone())),
        tokio::spawn(crate::admin::serve(
            listener,
            r.clone(),
            prom,
            background.clone(),
        )),
    ];

    let (done_tx, done_rx) = mpsc::channel(r.config.concurrency.max(16));
    let recorder = tokio::spawn(crate::record::recorder(r.clone(), done_rx));
    crate::claim::claimer(r.clone(), done_tx, shutdown.clone()).await;
    // All workers are finished or aborted and every sender is dropped: the recorder writes
    // what is left and ends. If the database is gone it cannot; leases then expire.
    let grace = r.config.shutdown_grace.max(Duration::from_secs(1));
    let abort = recorder.abort_handle();
    if tokio::time::timeout(grace, recorder).await.is_err() {
        tracing::warn!("could not record the last outcomes in time; their leases will expire");
        abort.abort();
    }
    // The inbound listener stopped accepting at the same signal; its open requests are
    // committed and answered before the pool's last users go.
    if let Some(inbound) = inbound {
        let _ = inbound.await;
    }
    background.cancel();
    for s in services {
        let _ = s.await;
    }
    tracing::info!("outboxd stopped");
}
