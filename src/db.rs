//! Database plumbing: how outboxd reaches PostgreSQL (the connection string with its TLS
//! parameters, [`tls`], and what sits in between, [`Pooler`]), the connection pool, the one
//! way a query is sent ([`Conn`], [`Tx`]), embedded migrations ([`migrate`]), and errors
//! that say what PostgreSQL said ([`error`]).
//!
//! Every query the engine runs lives in `sql/engine/*.sql` and is loaded by `crate::sql`;
//! a test prepares each of them against a freshly migrated schema, so a typo or a schema
//! drift fails CI rather than production.

pub(crate) mod conn;
pub(crate) mod error;
mod migrate;
pub(crate) mod privileges;
pub(crate) mod tls;
pub(crate) mod url;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::config::Host;

pub use conn::Pooler;
pub(crate) use conn::{Conn, Queries, Tx};
pub use migrate::{latest_migration, migrate};
pub use url::SslMode;

/// Failures talking to PostgreSQL. Each one's text says what PostgreSQL said (SQLSTATE,
/// message, detail, hint), not only `db error`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to PostgreSQL: {}", error::describe(.0))]
    Connect(tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: no answer within {0:?}")]
    ConnectTimeout(Duration),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    #[error("database error: {}", error::describe(.0))]
    Query(tokio_postgres::Error),
    #[error("connection pool: {}", pool_error(.0))]
    Pool(deadpool_postgres::PoolError),
    #[error(
        "database schema is at migration {found}, which needs an outboxd that knows migration {oldest_binary} or later (this one knows {known}); upgrade outboxd"
    )]
    SchemaTooNew {
        found: i32,
        known: i32,
        oldest_binary: i32,
    },
    #[error("database schema is not migrated (at {found:?}, need {known}); run `outboxd migrate`")]
    SchemaNotMigrated { found: Option<i32>, known: i32 },
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> DbError {
        DbError::Query(e)
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> DbError {
        DbError::Pool(e)
    }
}

impl DbError {
    /// The SQLSTATE, when PostgreSQL answered with an error (`42501`: a missing privilege).
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Query(e) | DbError::Connect(e) => error::sqlstate(e),
            DbError::Pool(deadpool_postgres::PoolError::Backend(e)) => error::sqlstate(e),
            _ => None,
        }
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => format!("cannot connect to PostgreSQL: {}", error::describe(e)),
        PoolError::PostCreateHook(deadpool_postgres::HookError::Backend(e)) => {
            format!("setting up a new connection: {}", error::describe(e))
        }
        other => other.to_string(),
    }
}

/// How to reach the database: the parsed connection string, its TLS set-up and the pooler
/// mode. Built once (config validation reads the certificate files), used for every
/// connection: the pool, LISTEN, `migrate`.
#[derive(Clone, Debug)]
pub struct Connector {
    pg: tokio_postgres::Config,
    tls: tls::Tls,
    pooler: Pooler,
    /// The "not encrypted" warning is logged once per connector.
    warned: Arc<AtomicBool>,
}

impl Connector {
    /// Parses `url` (libpq's URL or key=value form, with `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`). Without `connect_timeout`, connecting gives up after 10 s (a server that
    /// accepts TCP but never answers would otherwise hang start-up forever).
    pub fn new(url: &str, pooler: Pooler) -> Result<Connector, DbError> {
        let (rest, tls_params) = url::split_tls(url).map_err(DbError::InvalidUrl)?;
        let mut pg = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| DbError::InvalidUrl(error::describe(&e)))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        pg.ssl_mode(match tls_params.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let tls = tls::Tls::new(&tls_params).map_err(DbError::InvalidUrl)?;
        Ok(Connector {
            pg,
            tls,
            pooler,
            warned: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// Opens one connection and drives it in the background.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, DbError> {
        let (client, conn) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %error::describe(&e), "database connection closed");
            }
        });
        Ok(client)
    }

    /// Opens one connection, giving up after the connect timeout for the whole handshake
    /// (tokio-postgres applies it to the TCP connect only: a server that accepts and never
    /// answers would hang forever). The caller drives the connection (LISTEN reads from it).
    pub async fn connect_raw(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                tls::TlsStream<tokio_postgres::Socket>,
            >,
        ),
        DbError,
    > {
        let limit = self
            .pg
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let tls = self.tls.counted();
        let connected = match tokio::time::timeout(limit, self.pg.connect(tls.clone())).await {
            Ok(result) => result.map_err(DbError::Connect)?,
            Err(_) => return Err(DbError::ConnectTimeout(limit)),
        };
        if tls.handshakes() == 0 {
            self.warn_unencrypted();
        }
        Ok(connected)
    }

    /// Logs once when a connection to a host beyond loopback ended up in plaintext.
    fn warn_unencrypted(&self) {
        let remote = self.pg.get_hosts().iter().find_map(|h| match h {
            Host::Tcp(name) if !is_loopback(name) => Some(name.clone()),
            _ => None,
        });
        if let Some(host) = remote
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                host = %host,
                sslmode = self.tls.mode().as_str(),
                "the connection to PostgreSQL is not encrypted; add sslmode=verify-full and \
                 sslrootcert=<CA file> to DATABASE_URL (README \"TLS\")"
            );
        }
    }

    /// A pool of `size` connections, created lazily. Session settings by pooler mode:
    ///
    /// JIT and parallel query are switched off (unless the URL's `options` set them): the
    /// engine's statements are small and index-driven, and prepared once per connection. A
    /// generic plan whose estimated cost passes `jit_above_cost` (the LATERAL … LIMIT of the
    /// claim and the router's fetch estimate their rows blindly) would compile on every
    /// execution, 20+ ms each time for a query that runs in one; a parallel plan forks two
    /// worker processes per execution (measured: ~8 % of the machine's CPU went to forking
    /// and tearing down backends at full throughput).
    ///
    /// * `none`: sent as the start-up parameter `options` (no extra round trip);
    /// * `session`: PgBouncer refuses `options`, so each new connection runs
    ///   `sql/engine/session_settings.sql` once;
    /// * `transaction`: a `SET` would land on whichever server connection ran it; set them on
    ///   the role instead (`ALTER ROLE … SET jit = off`, README "Poolers"); start-up says so
    ///   when they are not.
    pub fn pool(&self, size: usize) -> Result<Pool, DbError> {
        let mut cfg = self.pg.clone();
        if cfg.get_application_name().is_none() {
            cfg.application_name("outboxd");
        }
        if self.pooler == Pooler::None {
            let mut options = cfg.get_options().unwrap_or_default().to_owned();
            for (name, setting) in [
                ("jit", "-c jit=off"),
                (
                    "max_parallel_workers_per_gather",
                    "-c max_parallel_workers_per_gather=0",
                ),
            ] {
                if !options.contains(name) {
                    options = format!("{options} {setting}").trim_start().to_owned();
                }
            }
            cfg.options(&options);
        }
        let mgr = Manager::from_config(
            cfg,
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(mgr)
            .max_size(size)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1);
        if self.pooler == Pooler::Session {
            builder = builder.post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .simple_query(crate::sql::SESSION_SETTINGS)
                        .await
                        .map(drop)
                        .map_err(HookError::Backend)
                })
            }));
        }
        builder
            .build()
            .map_err(|e| DbError::InvalidUrl(e.to_string()))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks `url` as [`Connector::new`] would (for config validation).
pub fn parse_url(url: &str) -> Result<(), DbError> {
    Connector::new(url, Pooler::None).map(drop)
}

/// Opens one connection to `url` (for migrations, tests, tools) and drives it in the
/// background. TLS as the URL says.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, DbError> {
    Connector::new(url, Pooler::None)?.connect().await
}

/// A pooled connection that sends queries as the pooler mode allows.
pub(crate) async fn get(pool: &Pool, pooler: Pooler) -> Result<Conn, DbError> {
    Ok(Conn::new(pool.get().await?, pooler))
}

/// Where the database's schema stands for this binary, when it may run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// At this binary's newest migration.
    Current(i32),
    /// Newer than this binary knows, and still compatible with it (migration V21's
    /// `outbox.schema_compatibility`): a rolling upgrade or a rollback in progress.
    Newer {
        found: i32,
        known: i32,
        oldest_binary: i32,
    },
}

impl Schema {
    /// The newest migration applied to the database.
    pub fn database_version(&self) -> i32 {
        match *self {
            Schema::Current(v) => v,
            Schema::Newer { found, .. } => found,
        }
    }

    /// What a newer schema means for this replica (for the log and `/readyz`); `None` when
    /// current.
    pub fn warning(&self) -> Option<String> {
        match *self {
            Schema::Current(_) => None,
            Schema::Newer {
                found,
                known,
                oldest_binary,
            } => Some(format!(
                "database schema is at migration {found}, newer than this outboxd knows \
                 ({known}); it supports binaries that know {oldest_binary} or later, so this \
                 replica runs: finish the rollout"
            )),
        }
    }
}

/// Checks the schema against this binary (for `/readyz`, for `outboxd run` without
/// `--migrate`, and for `outboxd migrate` on a schema ahead of it). At this binary's version,
/// or newer and still compatible with it (a rolling upgrade: the old replicas keep running
/// and stay ready), it may run; older, or newer than it supports, it may not. The queries have
/// no parameters, so they are sent unnamed whatever the pooler.
pub async fn check_schema(client: &tokio_postgres::Client) -> Result<Schema, DbError> {
    let known = latest_migration();
    let found: Option<i32> = match client
        .query_typed_opt(crate::sql::SCHEMA_VERSION, &[])
        .await
    {
        Ok(row) => row.and_then(|r| r.get(0)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(e.into()),
    };
    match found {
        Some(v) if v == known => Ok(Schema::Current(v)),
        Some(found) if found > known => {
            let oldest_binary: i32 = client
                .query_typed_one(crate::sql::SCHEMA_COMPATIBILITY, &[])
                .await?
                .try_get(0)?;
            if known >= oldest_binary {
                Ok(Schema::Newer {
                    found,
                    known,
                    oldest_binary,
                })
            } else {
                Err(DbError::SchemaTooNew {
                    found,
                    known,
                    oldest_binary,
                })
            }
        }
        _ => Err(DbError::SchemaNotMigrated { found, known }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["db", "10.0.0.5", "db.internal"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn errors_say_what_postgres_said_even_without_a_server() {
        let err = Connector::new("postgres://db/app?sslmode=verify-full", Pooler::None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sslrootcert"), "{err}");
        let err = Connector::new(
            "postgres://db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            Pooler::None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
