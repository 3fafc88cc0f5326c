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
//! Start-up binds the listener before anything touches the database: a replica started
//! while PostgreSQL is down stays up (`/healthz` 200, `/readyz` 503 saying why) and starts
//! its tasks once the database answers.
//!
//! Shutdown (SIGTERM in `main` cancels the token): the router and the claimer stop; the
//! claimer waits for its workers up to the grace period and releases what is left; the
//! recorder writes every outcome it received; then the background services stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::db::{self, Connector, DbError, Pooler};
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
    #[error("{last} (still failing after OUTBOXD_STARTUP_TIMEOUT={}; giving up)", humantime::format_duration(*.limit))]
    StartupTimeout { limit: Duration, last: DbError },
    #[error(
        "the database role {role:?} lacks privileges outboxd run needs: {missing}. Grant it \
         outboxd_runtime (sql/roles.sql; README \"Database roles\"), or these privileges"
    )]
    Privileges { role: String, missing: String },
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
    /// Binds the listener first (`/healthz` answers, `/readyz` says why it is not ready),
    /// then waits for PostgreSQL (with backoff, up to `OUTBOXD_STARTUP_TIMEOUT`), migrates or
    /// checks the schema, checks the role's privileges, loads the catalog and starts every
    /// task. Returns once they run, or with why they cannot.
    pub async fn start(config: Config) -> Result<Engine, EngineError> {
        let kinds: Vec<&'static str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        let prom = crate::metrics::handle(&kinds);
        let connector = Connector::new(&config.database_url, config.pooler)?;
        let listen_connector = match &config.listen_database_url {
            Some(url) => Some(Connector::new(url, Pooler::None)?),
            None if config.pooler.keeps_sessions() => Some(connector.clone()),
            None => None,
        };
        let pool = connector.pool(config.db_pool_size)?;
        let extra_roots = match &config.egress_ca_file {
            Some(path) => crate::delivery::http::read_ca_file(path)
                .map_err(|e| EngineError::Http(format!("OUTBOXD_EGRESS_CA_FILE: {e}")))?,
            None => Vec::new(),
        };
        if let Some(proxy) = &config.egress_proxy {
            // Display masks the proxies' credentials.
            tracing::info!(
                https = %proxy.https.as_ref().map_or("(none)".into(), |p| p.to_string()),
                http = %proxy.http.as_ref().map_or("(none)".into(), |p| p.to_string()),
                "deliveries go through the egress proxy (NO_PROXY hosts excepted); the SSRF guard checks targets before sending"
            );
        }
        let sender = Sender::new(SenderConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_payload_bytes,
            allow_networks: config.allow_networks.clone(),
            user_agent: format!("outboxd/{}", env!("CARGO_PKG_VERSION")),
            proxy: config.egress_proxy.clone(),
            extra_roots,
            client_cert_dir: config.client_cert_dir.clone(),
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
        // The public listener is bound as early (a taken port fails start-up at once) but
        // serves only once the database is ready; until then it answers 503.
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
        tracing::info!(listen = %listen_addr, "listening; starting up");
        // Until start-up is done, the inbound listener answers every request 503.
        let inbound_started = CancellationToken::new();
        // Also when this future is dropped (a signal during start-up).
        let _answering_503 = inbound_started.clone().drop_guard();
        let inbound = inbound.map(|(l, at)| {
            let waiting = crate::inbound::listener::unavailable_until(l, inbound_started.clone());
            (tokio::spawn(waiting), at)
        });

        let replica = Arc::new(Replica::new(config, pool, Catalog::default(), sender));
        // Background services (the listener first) stop with `background`, after the claimer
        // and the recorder are done.
        let background = CancellationToken::new();
        let http = tokio::spawn(crate::admin::serve(
            listener,
            replica.clone(),
            prom,
            background.clone(),
        ));
        let started = start_up(&replica, &connector).await;
        inbound_started.cancel();
        let inbound = match (started, inbound) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Ok(None),
            (Ok(()), Some((waiting, at))) => match waiting.await {
                Ok(l) => Ok(Some((l, at))),
                Err(e) => Err(EngineError::Listen {
                    addr: at,
                    source: std::io::Error::other(e),
                }),
            },
        };
        let inbound = match inbound {
            Ok(i) => i,
            Err(e) => {
                background.cancel();
                let _ = http.await;
                return Err(e);
            }
        };
        replica.readiness.started(Instant::now());

        let shutdown = CancellationToken::new();
        let inbound_task = inbound.map(|(l, at)| {
            tracing::info!(inbound = %at, "inbound listener started");
            tokio::spawn(crate::inbound::run(
                l,
                replica.clone(),
                connector.clone(),
                shutdown.clone(),
            ))
        });
        let task = tokio::spawn(run(
            replica,
            listen_connector,
            http,
            background,
            shutdown.clone(),
            inbound_task,
        ));
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

/// Everything between binding the listener and starting the tasks; `/readyz` says which
/// step it is at.
async fn start_up(replica: &Replica, connector: &Connector) -> Result<(), EngineError> {
    let config = &replica.config;
    let mut client = wait_for_database(replica, connector).await?;
    let schema = if config.migrate {
        replica.readiness.starting("migrating the database");
        db::migrate(&mut client).await?
    } else {
        db::check_schema(&client).await?
    };
    if let Some(warning) = schema.warning() {
        tracing::warn!("{warning}");
    }
    drop(client);

    replica
        .readiness
        .starting("checking the database role's privileges");
    let conn = replica.db().await?;
    let settings = conn
        .query_one(crate::sql::SESSION_SETTINGS_SHOW, &[])
        .await
        .map_err(DbError::from)?;
    let role: String = settings.get(0);
    let missing = db::privileges::missing(&conn).await?;
    if !missing.is_empty() {
        return Err(EngineError::Privileges {
            role,
            missing: db::privileges::list(&missing),
        });
    }
    if config.pooler == Pooler::Transaction {
        let (jit, parallel): (String, String) = (settings.get(1), settings.get(2));
        if jit != "off" || parallel != "0" {
            tracing::warn!(
                role = %role,
                jit = %jit,
                max_parallel_workers_per_gather = %parallel,
                "behind a transaction-mode pooler outboxd cannot set its session settings; \
                 run ALTER ROLE {role} SET jit = off; ALTER ROLE {role} SET \
                 max_parallel_workers_per_gather = 0 (README \"Poolers\")"
            );
        }
        if config.listen_database_url.is_none() {
            tracing::info!(
                poll_interval = %humantime::format_duration(config.poll_interval),
                "OUTBOXD_POOLER=transaction: LISTEN/NOTIFY does not pass a transaction-mode \
                 pooler, so new events and configuration changes are found by polling every \
                 OUTBOXD_POLL_INTERVAL; set OUTBOXD_LISTEN_DATABASE_URL to a direct connection \
                 for instant wake-ups"
            );
        }
    }
    replica
        .readiness
        .starting("loading endpoints and subscriptions");
    replica.catalog.set(
        Catalog::load(&conn, &Catalog::default())
            .await
            .map_err(DbError::from)?,
    );
    // A missing or invalid client certificate is logged now, not at the first delivery.
    replica
        .sender
        .preload_client_certificates(replica.catalog.get().client_certificates());
    tracing::info!(
        role = %role,
        pooler = config.pooler.as_str(),
        "database ready: schema at version {}, privileges complete",
        db::latest_migration()
    );
    Ok(())
}

/// Connects, retrying with backoff (200 ms doubling to 5 s) until PostgreSQL answers or
/// `OUTBOXD_STARTUP_TIMEOUT` has passed. Every failure is logged and shown by `/readyz`.
async fn wait_for_database(
    replica: &Replica,
    connector: &Connector,
) -> Result<tokio_postgres::Client, EngineError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    replica.readiness.starting("connecting to PostgreSQL");
    loop {
        let e = match connector.connect().await {
            Ok(client) => return Ok(client),
            Err(e) => e,
        };
        let waited = started.elapsed();
        if let Some(limit) = replica.config.startup_timeout
            && waited + backoff > limit
        {
            return Err(EngineError::StartupTimeout { limit, last: e });
        }
        tracing::warn!(
            error = %e,
            retry_in = %humantime::format_duration(backoff),
            "PostgreSQL does not answer yet; waiting for it"
        );
        replica
            .readiness
            .starting(format!("waiting for PostgreSQL: {e}"));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn run(
    replica: Arc<Replica>,
    listen: Option<Connector>,
    http: JoinHandle<()>,
    background: CancellationToken,
    shutdown: CancellationToken,
    inbound: Option<JoinHandle<()>>,
) {
    let r = &replica;
    let rescue_every =
        (r.config.lease / 4).clamp(Duration::from_millis(500), Duration::from_secs(10));
    let mut services = vec![
        http,
        tokio::spawn(crate::wakeup::reload_catalog(
            r.clone(),
            listen.is_some(),
            background.clone(),
        )),
        tokio::spawn(crate::router::run(r.clone(), shutdown.clone())),
        tokio::spawn(crate::maintenance::rescue_leases(
            r.clone(),
            rescue_every,
            background.clone(),
        )),
        tokio::spawn(crate::maintenance::retention(r.clone(), background.clone())),
        tokio::spawn(crate::maintenance::stats(r.clone(), background.clone())),
    ];
    if let Some(connector) = listen {
        services.push(tokio::spawn(crate::wakeup::listen(
            r.clone(),
            connector,
            background.clone(),
        )));
    }

    let (done_tx, done_rx) = mpsc::channel(r.config.concurrency.max(16));
    // Hot lane hand-offs, recorder → claimer (bounded by the replica's concurrency).
    let (handoff_tx, handoff_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(crate::record::recorder(r.clone(), done_rx, handoff_tx));
    crate::claim::claimer(r.clone(), done_tx, handoff_rx, shutdown.clone()).await;
    // All workers are finished or aborted and every sender is dropped: the recorder writes
    // what is left and ends. If the database is gone it cannot; leases then expire.
    let grace = r.config.shutdown_grace.max(Duration::from_secs(1));
    let abort = recorder.abort_handle();
    if tokio::time::timeout(grace, recorder).await.is_err() {
        tracing::warn!("could not record the last outcomes in time; their leases will expire");
        abort.abort();
    }
    // The inbound listener stopped accepting at the same signal; its open requests are
    // committed and answered before the background services go.
    if let Some(inbound) = inbound {
        let _ = inbound.await;
    }
    background.cancel();
    for s in services {
        let _ = s.await;
    }
    tracing::info!("outboxd stopped");
}
