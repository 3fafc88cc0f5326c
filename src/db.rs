//! Database plumbing: the connection pool, embedded migrations and the engine's named queries.
//!
//! Every query the engine runs lives in `sql/engine/*.sql` and is loaded here with
//! `include_str!`; `tests/` prepares each of them against a freshly migrated schema, so a typo
//! or a schema drift fails CI rather than production.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Failures talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: no answer within {0:?}")]
    ConnectTimeout(std::time::Duration),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(
        "database schema is at migration {found}, newer than this outboxd knows ({known}); upgrade outboxd"
    )]
    SchemaTooNew { found: i32, known: i32 },
    #[error("database schema is not migrated (at {found:?}, need {known}); run `outboxd migrate`")]
    SchemaNotMigrated { found: Option<i32>, known: i32 },
}

/// Parses a `postgres://` URL into a tokio-postgres config.
/// Without `connect_timeout` in the URL, connecting gives up after 10 s (a server that
/// accepts TCP but never answers would otherwise hang start-up forever).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut cfg =
        tokio_postgres::Config::from_str(url).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    Ok(cfg)
}

/// Opens one connection (for migrations, LISTEN, tests) and drives it in the background.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let cfg = parse_url(url)?;
    let (client, conn) = connect_with_timeout(&cfg).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// Connects, giving up after the config's connect timeout for the whole handshake
/// (tokio-postgres applies it to the TCP connect only: a server that accepts and never
/// answers would hang forever).
pub async fn connect_with_timeout(
    cfg: &tokio_postgres::Config,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    DbError,
> {
    let limit = cfg
        .get_connect_timeout()
        .copied()
        .unwrap_or(std::time::Duration::from_secs(10));
    match tokio::time::timeout(limit, cfg.connect(NoTls)).await {
        Ok(result) => result.map_err(DbError::Connect),
        Err(_) => Err(DbError::ConnectTimeout(limit)),
    }
}

/// A pool of `size` connections. Connections are created lazily.
///
/// JIT and parallel query are switched off on these connections (unless the URL's `options`
/// set them): the engine's statements are small and index-driven, and prepared once per
/// connection (`prepare_cached`: parsing and planning them on every call cost a fifth of
/// PostgreSQL's CPU and a round trip per statement). A generic plan whose estimated cost
/// passes `jit_above_cost` (the LATERAL ... LIMIT of the claim and the router's fetch
/// estimate their rows blindly) would compile on every execution, 20+ ms each time for a query that runs in one; a parallel plan forks two
/// worker processes per execution (measured: ~8 % of the machine's CPU went to forking and
/// tearing down backends at full throughput).
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let mut cfg = parse_url(url)?;
    if cfg.get_application_name().is_none() {
        cfg.application_name("outboxd");
    }
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
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::InvalidUrl(e.to_string()))
}

/// The newest migration version embedded in this binary.
pub fn latest_migration() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// Applies all pending migrations. Safe to run concurrently from several replicas: refinery
/// serializes on its history table, and this takes an advisory lock around it.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), DbError> {
    client
        .execute(crate::sql::MIGRATE_LOCK, &[&crate::locks::MIGRATE])
        .await?;
    let result = embedded::migrations::runner()
        .set_migration_table_name("outboxd_schema_history")
        .run_async(client)
        .await;
    client
        .execute(crate::sql::MIGRATE_UNLOCK, &[&crate::locks::MIGRATE])
        .await?;
    result?;
    Ok(())
}

/// Checks that the schema is exactly at the version this binary expects (for `/readyz` and
/// for `outboxd run` without `--migrate`).
pub async fn check_schema(client: &tokio_postgres::Client) -> Result<(), DbError> {
    let known = latest_migration();
    let found: Option<i32> = match client.query_opt(crate::sql::SCHEMA_VERSION, &[]).await {
        Ok(row) => row.and_then(|r| r.get(0)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(e.into()),
    };
    match found {
        Some(v) if v == known => Ok(()),
        Some(v) if v > known => Err(DbError::SchemaTooNew { found: v, known }),
        _ => Err(DbError::SchemaNotMigrated { found, known }),
    }
}
