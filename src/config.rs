//! Configuration: one typed struct, validated at start. Every default is documented here and
//! in the README's configuration table; `outboxd run --help` shows the same text.
//!
//! Values come from flags or `OUTBOXD_*` environment variables (`DATABASE_URL` for the
//! database). `Debug` never prints the database password or the admin token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::db::Pooler;
use crate::delivery::http::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_REQUEST_TIMEOUT,
};
use crate::egress::{EgressError, EgressProxy, ProxySettings};
use crate::metrics::endpoints::LabelPolicy;
use crate::retry::{
    DEFAULT_JITTER, DEFAULT_MAX_AGE, DEFAULT_RETRY_AFTER_CAP, DEFAULT_SCHEDULE, RetryPolicy,
    parse_schedule,
};

/// Invalid configuration, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

/// Flags and environment of `outboxd run` (and the engine part of `outboxd demo`).
#[derive(Args, Clone)]
pub struct RunArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@host:5432/db
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Address of the HTTP listener for /metrics, /healthz, /readyz and /v1/...
    #[arg(long, env = "OUTBOXD_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,

    /// Bearer token for /v1/...; required when listening beyond loopback.
    #[arg(long, env = "OUTBOXD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Comma-separated CIDRs exempt from the SSRF guard, e.g. 127.0.0.0/8,::1/128
    #[arg(long, env = "OUTBOXD_ALLOW_NETWORKS", default_value = "")]
    pub allow_networks: String,

    /// Delays between attempts; the last repeats.
    #[arg(long, env = "OUTBOXD_RETRY_SCHEDULE", default_value = DEFAULT_SCHEDULE)]
    pub retry_schedule: String,

    /// Randomness added to each retry delay (0.2 = ±20 %).
    #[arg(long, env = "OUTBOXD_RETRY_JITTER", default_value_t = DEFAULT_JITTER)]
    pub retry_jitter: f64,

    /// Age of the event after which a failing delivery is dead.
    #[arg(long, env = "OUTBOXD_MAX_AGE", default_value_t = DEFAULT_MAX_AGE.into())]
    pub max_age: humantime::Duration,

    /// Upper bound for a receiver's Retry-After.
    #[arg(long, env = "OUTBOXD_RETRY_AFTER_MAX", default_value_t = DEFAULT_RETRY_AFTER_CAP.into())]
    pub retry_after_max: humantime::Duration,

    /// Total timeout of one HTTP attempt.
    #[arg(long, env = "OUTBOXD_REQUEST_TIMEOUT", default_value_t = DEFAULT_REQUEST_TIMEOUT.into())]
    pub request_timeout: humantime::Duration,

    /// TCP/TLS connect timeout of one HTTP attempt.
    #[arg(long, env = "OUTBOXD_CONNECT_TIMEOUT", default_value_t = DEFAULT_CONNECT_TIMEOUT.into())]
    pub connect_timeout: humantime::Duration,

    /// Largest payload sent; larger events are dead with error kind body_too_large.
    #[arg(long, env = "OUTBOXD_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_payload_bytes: usize,

    /// HTTP requests in flight at once in this replica (all endpoints together).
    #[arg(long, env = "OUTBOXD_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,

    /// PostgreSQL connections of this replica.
    #[arg(long, env = "OUTBOXD_DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: usize,

    /// Fallback poll interval when no notification arrives (also bounds retry precision).
    #[arg(long, env = "OUTBOXD_POLL_INTERVAL", default_value = "1s")]
    pub poll_interval: humantime::Duration,

    /// How long a claimed delivery stays leased to this replica; default: request timeout + 30s.
    #[arg(long, env = "OUTBOXD_LEASE")]
    pub lease: Option<humantime::Duration>,

    /// Events routed per routing transaction.
    #[arg(long, env = "OUTBOXD_ROUTE_BATCH", default_value_t = 1000)]
    pub route_batch: usize,

    /// Deliveries claimed per claiming transaction at most.
    #[arg(long, env = "OUTBOXD_CLAIM_BATCH", default_value_t = 256)]
    pub claim_batch: usize,

    /// Consecutive failures that open an endpoint's circuit.
    #[arg(long, env = "OUTBOXD_CIRCUIT_FAILURES", default_value_t = 5)]
    pub circuit_failures: u32,

    /// How long an open circuit waits before one probe request (doubles while probes fail, up to 10 min).
    #[arg(long, env = "OUTBOXD_CIRCUIT_COOLDOWN", default_value = "30s")]
    pub circuit_cooldown: humantime::Duration,

    /// How long SIGTERM waits for in-flight deliveries before releasing them.
    #[arg(long, env = "OUTBOXD_SHUTDOWN_GRACE", default_value = "30s")]
    pub shutdown_grace: humantime::Duration,

    /// Succeeded deliveries (and their events and attempts) are deleted after this age.
    #[arg(long, env = "OUTBOXD_RETENTION_SUCCEEDED", default_value = "7d")]
    pub retention_succeeded: humantime::Duration,

    /// Dead deliveries (and their attempts) are deleted this long after they died.
    #[arg(long, env = "OUTBOXD_RETENTION_DEAD", default_value = "30d")]
    pub retention_dead: humantime::Duration,

    /// How often retention runs (in small batches, each its own short transaction).
    #[arg(long, env = "OUTBOXD_RETENTION_INTERVAL", default_value = "1m")]
    pub retention_interval: humantime::Duration,

    /// Apply pending migrations at start.
    #[arg(long, env = "OUTBOXD_MIGRATE", default_value_t = false)]
    pub migrate: bool,

    /// Name of this replica in leases and attempts (must be unique); default: hostname-pid-random.
    #[arg(long, env = "OUTBOXD_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Serve the web console at /ui/ (signing in needs OUTBOXD_ADMIN_TOKEN).
    #[arg(long, env = "OUTBOXD_CONSOLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub console: bool,

    /// How long a console session lasts after signing in.
    #[arg(long, env = "OUTBOXD_CONSOLE_SESSION_TTL", default_value = "12h")]
    pub console_session_ttl: humantime::Duration,

    /// Origins allowed to show the console in a frame (CSP frame-ancestors), space-separated,
    /// e.g. https://ops.example.com; default: none (the console is never framed).
    #[arg(long, env = "OUTBOXD_CONSOLE_FRAME_ANCESTORS", default_value = "")]
    pub console_frame_ancestors: String,

    /// Key that signs tenant portal links and sessions (32 characters or more); rotating it
    /// revokes them all. Default: derived from OUTBOXD_ADMIN_TOKEN (with a warning).
    #[arg(long, env = "OUTBOXD_PORTAL_KEY", hide_env_values = true)]
    pub portal_key: Option<String>,

    /// Origins allowed to show the tenant portal in a frame (CSP frame-ancestors),
    /// space-separated, e.g. https://app.example.com; default: none.
    #[arg(long, env = "OUTBOXD_PORTAL_FRAME_ANCESTORS", default_value = "")]
    pub portal_frame_ancestors: String,

    /// The URL browsers reach this listener at, e.g. https://hooks.example.com: portal links
    /// point there. Default: from the request (POST /v1/portal-links) or OUTBOXD_LISTEN.
    #[arg(long, env = "OUTBOXD_PORTAL_URL", default_value = "")]
    pub portal_url: String,
    /// Which endpoints get their own endpoint_id label in /metrics: all, none, or top:N (at most N; the rest are summed as endpoint_id="other").
    #[arg(
        long,
        env = "OUTBOXD_METRICS_ENDPOINT_LABELS",
        default_value = "top:100"
    )]
    pub metrics_endpoint_labels: String,

    /// How often the replica holding the stats lease refreshes the database-wide gauges of /metrics.
    #[arg(long, env = "OUTBOXD_STATS_INTERVAL", default_value = "10s")]
    pub stats_interval: humantime::Duration,

    /// Events of a type not registered in the catalog (outbox.event_types) get dead deliveries
    /// instead of being delivered; registering the type and retrying the dead sends them.
    #[arg(long, env = "OUTBOXD_STRICT_EVENT_TYPES", default_value_t = false, action = clap::ArgAction::Set)]
    pub strict_event_types: bool,
    /// What sits between outboxd and PostgreSQL: none (a direct connection), session or
    /// transaction (a pooler such as PgBouncer in that pool mode). README "Poolers".
    #[arg(long, env = "OUTBOXD_POOLER", default_value = "none")]
    pub pooler: String,

    /// A direct connection (not through a transaction-mode pooler) used only to LISTEN for
    /// wake-ups; without it, OUTBOXD_POOLER=transaction polls every OUTBOXD_POLL_INTERVAL.
    #[arg(long, env = "OUTBOXD_LISTEN_DATABASE_URL", hide_env_values = true)]
    pub listen_database_url: Option<String>,

    /// How long `run` waits for PostgreSQL to answer at start-up before giving up; default:
    /// forever (the HTTP listener is up meanwhile: /healthz 200, /readyz 503).
    #[arg(long, env = "OUTBOXD_STARTUP_TIMEOUT")]
    pub startup_timeout: Option<humantime::Duration>,

    /// Address of the public listener for inbound webhooks (POST /in/{source}); off when unset.
    #[arg(long, env = "OUTBOXD_INBOUND_LISTEN")]
    pub inbound_listen: Option<SocketAddr>,

    /// Stored inbound requests are deleted after this age (not while a kept event relays one).
    #[arg(long, env = "OUTBOXD_INBOUND_RETENTION", default_value = "7d")]
    pub inbound_retention: humantime::Duration,

    /// Inbound: time a client has to send a request's headers, and again its body.
    #[arg(long, env = "OUTBOXD_INBOUND_READ_TIMEOUT", default_value = "10s")]
    pub inbound_read_timeout: humantime::Duration,

    /// Inbound: open connections at most; more are answered 503 and closed.
    #[arg(long, env = "OUTBOXD_INBOUND_MAX_CONNECTIONS", default_value_t = 1024)]
    pub inbound_max_connections: usize,

    /// Inbound: database connections that store accepted requests (group commit).
    #[arg(long, env = "OUTBOXD_INBOUND_WRITERS", default_value_t = 2)]
    pub inbound_writers: usize,

    /// Inbound: request bodies held in memory at once, in bytes; beyond that, requests get 503.
    #[arg(long, env = "OUTBOXD_INBOUND_MAX_BUFFERED", default_value_t = 128 << 20)]
    pub inbound_max_buffered: usize,

    /// Proxy for every delivery (http://[user:password@]host:port); wins over HTTPS_PROXY and
    /// HTTP_PROXY; `off` ignores them. Default: those variables, else no proxy.
    #[arg(long, env = "OUTBOXD_EGRESS_PROXY", hide_env_values = true)]
    pub egress_proxy: Option<String>,

    /// Proxy for deliveries to https:// endpoints (else `https_proxy`).
    #[arg(long, env = "HTTPS_PROXY", hide_env_values = true)]
    pub https_proxy: Option<String>,

    /// Proxy for deliveries to http:// endpoints (else `http_proxy`).
    #[arg(long, env = "HTTP_PROXY", hide_env_values = true)]
    pub http_proxy: Option<String>,

    /// Endpoint hosts reached without the proxy, e.g. localhost,.internal,10.0.0.0/8 (else
    /// `no_proxy`).
    #[arg(long, env = "NO_PROXY")]
    pub no_proxy: Option<String>,

    /// PEM file of extra certificate authorities trusted for endpoints' server certificates,
    /// next to the system's.
    #[arg(long, env = "OUTBOXD_EGRESS_CA_FILE")]
    pub egress_ca_file: Option<PathBuf>,

    /// Directory of client certificates for mutual TLS to endpoints: <name>.crt + <name>.key,
    /// or <name>/tls.crt + <name>/tls.key (a mounted kubernetes.io/tls Secret).
    #[arg(long, env = "OUTBOXD_CLIENT_CERT_DIR")]
    pub client_cert_dir: Option<PathBuf>,
}

impl std::fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_networks", &self.allow_networks)
            .field("pooler", &self.pooler)
            .field(
                "listen_database_url",
                &self.listen_database_url.as_deref().map(redact_url),
            )
            .finish_non_exhaustive()
    }
}

/// The URL with its password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable url>".into(),
    }
}

/// The validated engine configuration.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    pub admin_token: Option<String>,
    pub allow_networks: Vec<ipnet::IpNet>,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_payload_bytes: usize,
    pub concurrency: usize,
    pub db_pool_size: usize,
    pub poll_interval: Duration,
    pub lease: Duration,
    pub route_batch: usize,
    pub claim_batch: usize,
    pub circuit_failures: u32,
    pub circuit_cooldown: Duration,
    pub shutdown_grace: Duration,
    pub retention_succeeded: Duration,
    pub retention_dead: Duration,
    pub retention_interval: Duration,
    pub migrate: bool,
    pub replica_id: String,
    pub console: bool,
    pub console_session_ttl: Duration,
    /// CSP `frame-ancestors` sources; `None`: not frameable.
    pub console_frame_ancestors: Option<String>,
    /// The tenant portal's signing key (`OUTBOXD_PORTAL_KEY`); `None`: derived from the
    /// admin token.
    pub portal_key: Option<String>,
    /// CSP `frame-ancestors` of portal pages; `None`: not frameable.
    pub portal_frame_ancestors: Option<String>,
    /// Base URL of portal links (no trailing slash); `None`: from the request.
    pub portal_url: Option<String>,
    pub metrics_endpoint_labels: LabelPolicy,
    pub stats_interval: Duration,
    /// `OUTBOXD_STRICT_EVENT_TYPES` (`crate::router`).
    pub strict_event_types: bool,
    pub pooler: Pooler,
    pub listen_database_url: Option<String>,
    /// `None`: wait for PostgreSQL forever.
    pub startup_timeout: Option<Duration>,
    pub inbound: InboundConfig,
    /// The egress proxy of deliveries; `None`: they connect directly (`crate::egress`).
    pub egress_proxy: Option<EgressProxy>,
    /// `OUTBOXD_EGRESS_CA_FILE`: extra roots for endpoints' server certificates.
    pub egress_ca_file: Option<PathBuf>,
    /// `OUTBOXD_CLIENT_CERT_DIR`: client certificates for mutual TLS.
    pub client_cert_dir: Option<PathBuf>,
}

/// The inbound listener's settings (README "Receiving webhooks").
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// `None`: no inbound listener on this replica (stored requests are still relayed and
    /// kept by retention).
    pub listen: Option<SocketAddr>,
    pub retention: Duration,
    pub read_timeout: Duration,
    pub max_connections: usize,
    pub writers: usize,
    pub max_buffered_bytes: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_networks", &self.allow_networks)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("concurrency", &self.concurrency)
            .field("replica_id", &self.replica_id)
            .field("pooler", &self.pooler)
            .field(
                "listen_database_url",
                &self.listen_database_url.as_deref().map(redact_url),
            )
            .field("startup_timeout", &self.startup_timeout)
            .field("inbound", &self.inbound)
            .field("egress_proxy", &self.egress_proxy)
            .field("egress_ca_file", &self.egress_ca_file)
            .field("client_cert_dir", &self.client_cert_dir)
            .finish_non_exhaustive()
    }
}

/// Parses `127.0.0.0/8,::1/128` (a bare address means a single host).
pub fn parse_networks(s: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(
                        "OUTBOXD_ALLOW_NETWORKS",
                        format!("{p:?} is not a CIDR like 127.0.0.0/8"),
                    )
                })
        })
        .collect()
}

impl RunArgs {
    /// Validates everything; `database_url` must be resolved by the caller for `demo`.
    pub fn into_config(self, database_url: String) -> Result<Config, ConfigError> {
        let inbound = self.inbound_config()?;
        let egress_proxy = self.egress_proxy()?;
        let schedule = parse_schedule(&self.retry_schedule)
            .map_err(|e| invalid("OUTBOXD_RETRY_SCHEDULE", e.to_string()))?;
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err(invalid("OUTBOXD_RETRY_JITTER", "must be between 0 and 1"));
        }
        let request_timeout: Duration = self.request_timeout.into();
        if request_timeout.is_zero() {
            return Err(invalid(
                "OUTBOXD_REQUEST_TIMEOUT",
                "must be greater than zero",
            ));
        }
        if self.concurrency == 0 || self.concurrency > 100_000 {
            return Err(invalid(
                "OUTBOXD_CONCURRENCY",
                "must be between 1 and 100000",
            ));
        }
        if self.db_pool_size < 2 {
            return Err(invalid("OUTBOXD_DB_POOL_SIZE", "must be at least 2"));
        }
        if self.route_batch == 0 || self.claim_batch == 0 {
            return Err(invalid(
                "OUTBOXD_ROUTE_BATCH/OUTBOXD_CLAIM_BATCH",
                "must be at least 1",
            ));
        }
        let poll_interval: Duration = self.poll_interval.into();
        if poll_interval < Duration::from_millis(10) {
            return Err(invalid("OUTBOXD_POLL_INTERVAL", "must be at least 10ms"));
        }
        let lease = self
            .lease
            .map(Into::into)
            .unwrap_or(request_timeout + Duration::from_secs(30));
        if lease <= request_timeout {
            return Err(invalid(
                "OUTBOXD_LEASE",
                "must be longer than OUTBOXD_REQUEST_TIMEOUT, or work would be redelivered while in flight",
            ));
        }
        let admin_token = self.admin_token.filter(|t| !t.is_empty());
        if admin_token.is_none() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "OUTBOXD_LISTEN",
                format!(
                    "{} is beyond loopback: set OUTBOXD_ADMIN_TOKEN to protect /v1/...",
                    self.listen
                ),
            ));
        }
        if let Some(t) = &admin_token
            && t.len() < 16
        {
            return Err(invalid(
                "OUTBOXD_ADMIN_TOKEN",
                "must be at least 16 characters",
            ));
        }
        if Duration::from(self.retention_interval) < Duration::from_millis(100) {
            return Err(invalid(
                "OUTBOXD_RETENTION_INTERVAL",
                "must be at least 100ms",
            ));
        }
        let replica_id = self.replica_id.unwrap_or_else(default_replica_id);
        let console_session_ttl: Duration = self.console_session_ttl.into();
        if console_session_ttl < Duration::from_secs(60)
            || console_session_ttl > Duration::from_secs(30 * 86_400)
        {
            return Err(invalid(
                "OUTBOXD_CONSOLE_SESSION_TTL",
                "must be between 1m and 30d",
            ));
        }
        let console_frame_ancestors = parse_frame_ancestors(
            "OUTBOXD_CONSOLE_FRAME_ANCESTORS",
            &self.console_frame_ancestors,
        )?;
        let portal_frame_ancestors = parse_frame_ancestors(
            "OUTBOXD_PORTAL_FRAME_ANCESTORS",
            &self.portal_frame_ancestors,
        )?;
        let portal_key = self.portal_key.filter(|k| !k.is_empty());
        if let Some(k) = &portal_key
            && k.len() < 32
        {
            return Err(invalid(
                "OUTBOXD_PORTAL_KEY",
                "must be at least 32 characters",
            ));
        }
        let portal_url = parse_portal_url(&self.portal_url)?;
        let metrics_endpoint_labels = self
            .metrics_endpoint_labels
            .parse::<LabelPolicy>()
            .map_err(|e| invalid("OUTBOXD_METRICS_ENDPOINT_LABELS", e))?;
        let stats_interval: Duration = self.stats_interval.into();
        if stats_interval < Duration::from_millis(100) {
            return Err(invalid("OUTBOXD_STATS_INTERVAL", "must be at least 100ms"));
        }
        crate::db::parse_url(&database_url).map_err(|e| invalid("DATABASE_URL", e.to_string()))?;
        let pooler: Pooler = self
            .pooler
            .parse()
            .map_err(|e: String| invalid("OUTBOXD_POOLER", e))?;
        let listen_database_url = self.listen_database_url.filter(|u| !u.is_empty());
        if let Some(url) = &listen_database_url {
            crate::db::parse_url(url)
                .map_err(|e| invalid("OUTBOXD_LISTEN_DATABASE_URL", e.to_string()))?;
        }
        if let Some(path) = &self.egress_ca_file {
            crate::delivery::http::read_ca_file(path)
                .map_err(|e| invalid("OUTBOXD_EGRESS_CA_FILE", e.to_string()))?;
        }
        if let Some(dir) = &self.client_cert_dir
            && !dir.is_dir()
        {
            return Err(invalid(
                "OUTBOXD_CLIENT_CERT_DIR",
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Config {
            database_url,
            listen: self.listen,
            admin_token,
            allow_networks: parse_networks(&self.allow_networks)?,
            retry: RetryPolicy {
                schedule,
                jitter: self.retry_jitter,
                max_age: self.max_age.into(),
                retry_after_cap: self.retry_after_max.into(),
            },
            request_timeout,
            connect_timeout: self.connect_timeout.into(),
            max_payload_bytes: self.max_payload_bytes,
            concurrency: self.concurrency,
            db_pool_size: self.db_pool_size,
            poll_interval,
            lease,
            route_batch: self.route_batch,
            claim_batch: self.claim_batch,
            circuit_failures: self.circuit_failures.max(1),
            circuit_cooldown: self.circuit_cooldown.into(),
            shutdown_grace: self.shutdown_grace.into(),
            retention_succeeded: self.retention_succeeded.into(),
            retention_dead: self.retention_dead.into(),
            retention_interval: self.retention_interval.into(),
            migrate: self.migrate,
            replica_id,
            console: self.console,
            console_session_ttl,
            console_frame_ancestors,
            portal_key,
            portal_frame_ancestors,
            portal_url,
            metrics_endpoint_labels,
            stats_interval,
            strict_event_types: self.strict_event_types,
            pooler,
            listen_database_url,
            startup_timeout: self.startup_timeout.map(Into::into),
            inbound,
            egress_proxy,
            egress_ca_file: self.egress_ca_file,
            client_cert_dir: self.client_cert_dir,
        })
    }

    /// The egress proxy: `OUTBOXD_EGRESS_PROXY`, else `HTTPS_PROXY`/`HTTP_PROXY` (each
    /// falling back to its lower-case form when unset; set but empty means none), with
    /// `NO_PROXY`.
    fn egress_proxy(&self) -> Result<Option<EgressProxy>, ConfigError> {
        let lower =
            |given: &Option<String>, name: &str| given.clone().or_else(|| std::env::var(name).ok());
        let https = lower(&self.https_proxy, "https_proxy");
        let http = lower(&self.http_proxy, "http_proxy");
        let no_proxy = lower(&self.no_proxy, "no_proxy");
        EgressProxy::from_settings(&ProxySettings {
            explicit: self.egress_proxy.as_deref(),
            https: https.as_deref(),
            http: http.as_deref(),
            no_proxy: no_proxy.as_deref(),
        })
        .map_err(|EgressError::Invalid { name, message }| invalid(name, message))
    }

    fn inbound_config(&self) -> Result<InboundConfig, ConfigError> {
        let read_timeout: Duration = self.inbound_read_timeout.into();
        if read_timeout < Duration::from_millis(100) {
            return Err(invalid(
                "OUTBOXD_INBOUND_READ_TIMEOUT",
                "must be at least 100ms",
            ));
        }
        if self.inbound_max_connections == 0 {
            return Err(invalid(
                "OUTBOXD_INBOUND_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.inbound_writers) {
            return Err(invalid(
                "OUTBOXD_INBOUND_WRITERS",
                "must be between 1 and 64",
            ));
        }
        if self.inbound_max_buffered < 20 << 20 {
            return Err(invalid(
                "OUTBOXD_INBOUND_MAX_BUFFERED",
                "must be at least 20971520 (one body of the largest size a source may allow)",
            ));
        }
        if let Some(addr) = self.inbound_listen
            && addr == self.listen
            && addr.port() != 0
        {
            return Err(invalid(
                "OUTBOXD_INBOUND_LISTEN",
                "must differ from OUTBOXD_LISTEN: the public listener serves only /in/{source}",
            ));
        }
        Ok(InboundConfig {
            listen: self.inbound_listen,
            retention: self.inbound_retention.into(),
            read_timeout,
            max_connections: self.inbound_max_connections,
            writers: self.inbound_writers,
            max_buffered_bytes: self.inbound_max_buffered,
        })
    }
}

/// `OUTBOXD_CONSOLE_FRAME_ANCESTORS`: CSP sources (`'self'`, `https://host[:port]`, with `*.`
/// wildcards), space-separated; nothing that could end the header's directive.
/// An absolute http(s) URL without query or fragment, kept without its trailing slash.
fn parse_portal_url(s: &str) -> Result<Option<String>, ConfigError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let u = url::Url::parse(s).map_err(|e| invalid("OUTBOXD_PORTAL_URL", e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host_str().is_none()
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
    {
        return Err(invalid(
            "OUTBOXD_PORTAL_URL",
            "must be an http(s) URL like https://hooks.example.com, without query or user",
        ));
    }
    Ok(Some(u.as_str().trim_end_matches('/').to_owned()))
}

fn parse_frame_ancestors(name: &'static str, s: &str) -> Result<Option<String>, ConfigError> {
    let sources: Vec<&str> = s.split_whitespace().collect();
    if sources.is_empty() {
        return Ok(None);
    }
    for src in &sources {
        let ok = *src == "'self'"
            || ((src.starts_with("https://") || src.starts_with("http://"))
                && src
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":/.-*".contains(c)));
        if !ok {
            return Err(invalid(
                name,
                format!("{src:?} is not 'self' or an origin like https://ops.example.com"),
            ));
        }
    }
    Ok(Some(sources.join(" ")))
}

fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "outboxd".into());
    // The random suffix keeps two engines in one process (tests, embedding) apart.
    let suffix: u16 = rand::random();
    format!("{host}-{}-{suffix:04x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut v = vec!["outboxd"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).run
    }

    const URL: &str = "postgres://u:secretpw@localhost/db";

    #[test]
    fn defaults_are_valid() {
        let c = args(&[]).into_config(URL.into()).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(15));
        assert_eq!(c.lease, Duration::from_secs(45));
        assert_eq!(c.retry.max_age, Duration::from_secs(86_400));
        assert!(c.allow_networks.is_empty());
    }

    #[test]
    fn refuses_to_listen_beyond_loopback_without_a_token() {
        let err = args(&["--listen", "0.0.0.0:9090"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(err.to_string().contains("OUTBOXD_ADMIN_TOKEN"), "{err}");
        args(&[
            "--listen",
            "0.0.0.0:9090",
            "--admin-token",
            "0123456789abcdef",
        ])
        .into_config(URL.into())
        .unwrap();
    }

    #[test]
    fn metrics_settings_are_checked() {
        let c = args(&[]).into_config(URL.into()).unwrap();
        assert_eq!(c.metrics_endpoint_labels, LabelPolicy::Top(100));
        assert_eq!(c.stats_interval, Duration::from_secs(10));
        let c = args(&["--metrics-endpoint-labels", "none"])
            .into_config(URL.into())
            .unwrap();
        assert_eq!(c.metrics_endpoint_labels, LabelPolicy::None);
        for (flag, value, name) in [
            (
                "--metrics-endpoint-labels",
                "top:0",
                "OUTBOXD_METRICS_ENDPOINT_LABELS",
            ),
            (
                "--metrics-endpoint-labels",
                "some",
                "OUTBOXD_METRICS_ENDPOINT_LABELS",
            ),
            ("--stats-interval", "10ms", "OUTBOXD_STATS_INTERVAL"),
        ] {
            let err = args(&[flag, value]).into_config(URL.into()).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn reports_bad_values_by_their_env_name() {
        let err = args(&["--retry-schedule", "5s,never"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("OUTBOXD_RETRY_SCHEDULE"),
            "{err}"
        );
        let err = args(&["--allow-networks", "127.0.0.0/33"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("OUTBOXD_ALLOW_NETWORKS"),
            "{err}"
        );
        let err = args(&["--lease", "1s"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(err.to_string().starts_with("OUTBOXD_LEASE"), "{err}");
        let err = args(&[]).into_config("mysql://x".into()).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"), "{err}");
        let err = args(&["--pooler", "pgbouncer"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(err.to_string().starts_with("OUTBOXD_POOLER"), "{err}");
        let err = args(&["--listen-database-url", "postgres://db/x?sslmode=maybe"])
            .into_config(URL.into())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("OUTBOXD_LISTEN_DATABASE_URL"),
            "{err}"
        );
        let err = args(&[])
            .into_config(format!("{URL}?sslmode=verify-full"))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("DATABASE_URL") && err.to_string().contains("sslrootcert"),
            "{err}"
        );
    }

    #[test]
    fn poolers_and_start_up_waiting_have_documented_defaults() {
        let c = args(&[]).into_config(URL.into()).unwrap();
        assert_eq!(c.pooler, Pooler::None);
        assert_eq!(c.startup_timeout, None, "waits for PostgreSQL forever");
        let c = args(&["--pooler", "transaction", "--startup-timeout", "2m"])
            .into_config(URL.into())
            .unwrap();
        assert_eq!(c.pooler, Pooler::Transaction);
        assert_eq!(c.startup_timeout, Some(Duration::from_secs(120)));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = args(&["--admin-token", "0123456789abcdef"])
            .into_config(URL.into())
            .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("secretpw") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
    }

    #[test]
    fn console_frame_ancestors_are_origins_only() {
        let c = args(&[
            "--console-frame-ancestors",
            "'self'  https://ops.example.com:8443",
        ])
        .into_config(URL.into())
        .unwrap();
        assert_eq!(
            c.console_frame_ancestors.as_deref(),
            Some("'self' https://ops.example.com:8443")
        );
        assert_eq!(
            args(&[])
                .into_config(URL.into())
                .unwrap()
                .console_frame_ancestors,
            None
        );
        for bad in [
            "https://a.example; script-src *",
            "*",
            "javascript:x",
            "'none'",
        ] {
            let err = args(&["--console-frame-ancestors", bad])
                .into_config(URL.into())
                .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("OUTBOXD_CONSOLE_FRAME_ANCESTORS"),
                "{bad}: {err}"
            );
        }
    }

    /// The proxy settings from these flags only (each unset one explicitly empty, so the
    /// test process's own HTTPS_PROXY & co. play no part).
    fn proxy_of(given: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut v: Vec<String> = Vec::new();
        for flag in [
            "--egress-proxy",
            "--https-proxy",
            "--http-proxy",
            "--no-proxy",
        ] {
            let value = given
                .iter()
                .find(|(f, _)| *f == flag)
                .map_or("", |(_, v)| *v);
            v.push(format!("{flag}={value}"));
        }
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        args(&v).into_config(URL.into())
    }

    #[test]
    fn the_egress_proxy_is_off_unless_set_and_the_explicit_one_wins() {
        assert_eq!(proxy_of(&[]).unwrap().egress_proxy, None);
        let target = |u: &str| url::Url::parse(u).unwrap();
        let https = ("--https-proxy", "http://u:pw@proxy.corp:3128");
        let no_proxy = ("--no-proxy", ".internal");
        let p = proxy_of(&[https, no_proxy]).unwrap().egress_proxy.unwrap();
        assert!(p.proxy_for(&target("https://hooks.example.com/")).is_some());
        assert!(p.proxy_for(&target("http://hooks.example.com/")).is_none());
        assert!(p.proxy_for(&target("https://a.internal/")).is_none());
        let c = proxy_of(&[https, no_proxy, ("--egress-proxy", "http://explicit:8080")]).unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("explicit:8080") && !shown.contains("pw@"),
            "{shown}"
        );
        let p = c.egress_proxy.unwrap();
        assert_eq!(
            p.proxy_for(&target("http://hooks.example.com/"))
                .map(|p| p.url().as_str()),
            Some("http://explicit:8080/")
        );
        assert!(
            p.proxy_for(&target("https://a.internal/")).is_none(),
            "NO_PROXY still applies"
        );
        let off = proxy_of(&[https, ("--egress-proxy", "off")]).unwrap();
        assert_eq!(off.egress_proxy, None);
        let err = proxy_of(&[("--https-proxy", "socks5://proxy:1080")]).unwrap_err();
        assert!(err.to_string().starts_with("HTTPS_PROXY: "), "{err}");
    }

    #[test]
    fn egress_tls_files_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |flag: &str, path: &std::path::Path| {
            args(&[flag, path.to_str().unwrap()])
                .into_config(URL.into())
                .unwrap_err()
                .to_string()
        };
        let missing = dir.path().join("nope.pem");
        let err = refused("--egress-ca-file", &missing);
        assert!(
            err.starts_with("OUTBOXD_EGRESS_CA_FILE: cannot read") && err.contains("nope.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = refused("--egress-ca-file", &empty);
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = refused("--client-cert-dir", &missing);
        assert!(
            err.starts_with("OUTBOXD_CLIENT_CERT_DIR: ") && err.contains("not a directory"),
            "{err}"
        );
        let c = args(&["--client-cert-dir", dir.path().to_str().unwrap()])
            .into_config(URL.into())
            .unwrap();
        assert_eq!(c.client_cert_dir.as_deref(), Some(dir.path()));
    }

    #[test]
    fn networks_accept_cidrs_and_bare_addresses() {
        let n = parse_networks("127.0.0.0/8, ::1").unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[1].to_string(), "::1/128");
    }
}

/// Property tests: allowed networks. Each property runs a moderate number of cases; `PROPTEST_CASES`
/// runs more (e.g. `PROPTEST_CASES=100000` for a soak). A failure prints the shrunk input:
/// pin it as a plain test.
#[cfg(test)]
mod properties {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::test_support::cases;

    proptest! {
        #![proptest_config(cases(512))]

        #[test]
        fn parse_networks_never_panics(s in prop_oneof![any::<String>(), "[0-9a-f.:/, ]{0,40}"]) {
            if let Ok(nets) = parse_networks(&s) {
                let parts = s.split(',').filter(|p| !p.trim().is_empty()).count();
                prop_assert_eq!(nets.len(), parts, "{:?}", s);
            }
        }

        #[test]
        fn parse_networks_reads_back_cidrs_and_bare_addresses(
            nets in proptest::collection::vec(
                prop_oneof![
                    (any::<u32>(), 0u8..=32).prop_map(|(a, p)| (IpAddr::V4(Ipv4Addr::from(a)), Some(p))),
                    (any::<u128>(), 0u8..=128).prop_map(|(a, p)| (IpAddr::V6(a.into()), Some(p))),
                    any::<u32>().prop_map(|a| (IpAddr::V4(Ipv4Addr::from(a)), None)),
                    any::<u128>().prop_map(|a| (IpAddr::V6(a.into()), None)),
                ],
                0..6,
            ),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { " , " } else { "," };
            let text = nets
                .iter()
                .map(|(a, p)| match p {
                    Some(p) => format!("{a}/{p}"),
                    None => a.to_string(),
                })
                .collect::<Vec<_>>()
                .join(sep);
            let parsed = parse_networks(&text).map_err(|e| e.to_string());
            let expected: Vec<ipnet::IpNet> = nets
                .iter()
                .map(|(a, p)| match p {
                    Some(p) => ipnet::IpNet::new(*a, *p).expect("valid prefix"),
                    None => ipnet::IpNet::from(*a),
                })
                .collect();
            prop_assert_eq!(parsed, Ok(expected), "{:?}", text);
        }
    }
}
