//! PostgreSQL for tests and instruments: fresh migrated databases, and throwaway clusters.
//!
//! # Fresh databases for tests
//!
//! [`fresh_db`] returns a new, empty, migrated database with a unique name
//! (`outboxd_t_<unix secs>_<pid>_<counter>_<random>`), cloned from the database
//! `outboxd_template` on the same server (rebuilt automatically when the files under
//! `migrations/` change).
//!
//! * With `DATABASE_URL` set, that server is used. Test databases older than one hour are
//!   dropped there (their creation time is in their name).
//! * Otherwise all test processes of one run share ONE throwaway cluster
//!   ([`outboxd::embedded_pg`], fsync off). The run is identified by `NEXTEST_RUN_ID` under
//!   `cargo nextest run` (every test is its own process) or by the process under `cargo test`.
//!   Under an exclusive `flock` on `/tmp/outboxd-test-pg/lock`, the state file
//!   `/tmp/outboxd-test-pg/state` lists the clusters, one per line, tab-separated:
//!   `run_id owner_pid owner_start_ticks port data_dir`. A cluster of this run that answers is
//!   reused; clusters of runs whose owner process (the nextest runner, or the `cargo test`
//!   process) is gone are stopped (`pg_ctl stop -m immediate`) and deleted, taking their test
//!   databases with them; clusters of runs still going on (concurrent test runs) are left alone.
//!   **The cluster of the last run stays up until the next run** (so a failed test's database
//!   can be inspected: `psql postgres://postgres@127.0.0.1:<port>/<db>`). `.ci/run` stops it:
//!   for each line, `pg_ctl stop -m immediate -D <data_dir>` (as the `postgres` user when root),
//!   then `rm -rf` the data dir's parent.
//! * Tests that restart or kill PostgreSQL must own their cluster ([`Cluster::throwaway`]),
//!   never touch the shared one.
//!
//! # Clusters and databases for instruments
//!
//! The bench and the chaos soak own their server: [`Cluster`] is `DATABASE_URL` or a throwaway
//! [`EmbeddedPostgres`] started with [`PgOptions`] (fsync, `max_connections`, extra settings
//! such as `shared_preload_libraries=pg_stat_statements`), which they can restart (fast, or
//! immediate = crash recovery) and whose CPU they can account for. [`create_database`] makes a
//! fresh migrated database on any server (from scratch, not from the tests' template: an
//! instrument measures what a real installation runs), [`drop_database`] removes it.

mod shared;

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use outboxd::embedded_pg::EmbeddedPostgres;
pub use outboxd::embedded_pg::Options as PgOptions;

use crate::process;

/// Name of the migrated template database every test database is cloned from.
pub const TEMPLATE_DB: &str = "outboxd_template";

/// Advisory lock guarding the template: shared while cloning, exclusive while rebuilding.
const TEMPLATE_LOCK: i64 = 7_355_608_101;
/// Name prefix of test databases; [`drop_stale_databases_once`] reads their age from the name.
const TEST_DB_PREFIX: &str = "outboxd_t";
const STALE_AFTER_SECS: u64 = 3600;

/// A new, migrated, empty database.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// `postgres://…/<name>`
    pub url: String,
    pub name: String,
}

impl TestDb {
    /// A new connection to this database (driven in the background).
    pub async fn client(&self) -> tokio_postgres::Client {
        outboxd::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }
}

/// A new empty database, migrated to the latest schema. See the module docs for where it lives.
pub async fn fresh_db() -> TestDb {
    // In-process engines log through tracing; show it in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
    let server = server_url().await;
    let name = unique_db_name(TEST_DB_PREFIX);
    let mut admin = outboxd::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connect to the test server {server}: {e}"));
    if std::env::var_os("DATABASE_URL").is_some() {
        drop_stale_databases_once(&admin).await;
    }
    let fingerprint = migrations_fingerprint();
    loop {
        lock(&admin, "pg_advisory_lock_shared").await;
        if template_fingerprint(&admin).await.as_deref() == Some(fingerprint.as_str()) {
            let created = admin
                .batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE {TEMPLATE_DB}",
                    quote_ident(&name)
                ))
                .await;
            lock(&admin, "pg_advisory_unlock_shared").await;
            created.unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", pg_error(&e)));
            break;
        }
        lock(&admin, "pg_advisory_unlock_shared").await;
        lock(&admin, "pg_advisory_lock").await;
        let rebuilt = if template_fingerprint(&admin).await.as_deref() == Some(fingerprint.as_str())
        {
            Ok(()) // someone else rebuilt it meanwhile
        } else {
            rebuild_template(&mut admin, &server, &fingerprint).await
        };
        lock(&admin, "pg_advisory_unlock").await;
        rebuilt.unwrap_or_else(|e| panic!("building {TEMPLATE_DB}: {e}"));
    }
    TestDb {
        url: url_with_db(&server, &name),
        name,
    }
}

/// The server test databases are created on: `DATABASE_URL`, or this run's shared cluster.
async fn server_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    static CLUSTER: OnceLock<Result<String, String>> = OnceLock::new();
    let result =
        tokio::task::spawn_blocking(|| CLUSTER.get_or_init(shared::shared_cluster).clone())
            .await
            .expect("shared cluster setup panicked");
    result.unwrap_or_else(|e| panic!("shared test PostgreSQL: {e}"))
}

async fn lock(client: &tokio_postgres::Client, function: &str) {
    client
        .execute(&format!("SELECT {function}({TEMPLATE_LOCK})"), &[])
        .await
        .unwrap_or_else(|e| panic!("{function}: {}", pg_error(&e)));
}

async fn template_fingerprint(client: &tokio_postgres::Client) -> Option<String> {
    client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&TEMPLATE_DB],
        )
        .await
        .unwrap_or_else(|e| panic!("reading {TEMPLATE_DB}: {}", pg_error(&e)))
        .and_then(|row| row.get::<_, Option<String>>(0))
}

/// (Re)creates the template and migrates it. Caller holds the exclusive advisory lock.
async fn rebuild_template(
    admin: &mut tokio_postgres::Client,
    server: &str,
    fingerprint: &str,
) -> Result<(), String> {
    let t = quote_ident(TEMPLATE_DB);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {t} WITH (FORCE)"))
        .await
        .map_err(|e| format!("drop: {}", pg_error(&e)))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {t} TEMPLATE template0"))
        .await
        .map_err(|e| format!("create: {}", pg_error(&e)))?;
    {
        let mut client = outboxd::connect(&url_with_db(server, TEMPLATE_DB))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        outboxd::migrate(&mut client)
            .await
            .map_err(|e| format!("migrate: {e}"))?;
    }
    // Nobody may stay connected to a template, or CREATE DATABASE … TEMPLATE fails.
    admin
        .batch_execute(&format!("ALTER DATABASE {t} ALLOW_CONNECTIONS false"))
        .await
        .map_err(|e| format!("alter: {}", pg_error(&e)))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&TEMPLATE_DB],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        if row.get::<_, i64>(0) == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("the migration connection did not go away".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE {t} IS {}",
            quote_literal(fingerprint)
        ))
        .await
        .map_err(|e| format!("comment: {}", pg_error(&e)))?;
    Ok(())
}

/// FNV-1a over the migration files (names and contents) and the embedded latest version.
fn migrations_fingerprint() -> String {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(&outboxd::latest_migration().to_le_bytes());
    for f in &files {
        feed(
            f.strip_prefix(&root)
                .unwrap_or(f)
                .to_string_lossy()
                .as_bytes(),
        );
        feed(&[0]);
        feed(&fs::read(f).unwrap_or_default());
        feed(&[0]);
    }
    format!("outboxd-migrations-{h:016x}")
}

/// `<prefix>_<unix secs>_<pid>_<counter>_<random>`: unique across processes and runs, and
/// the creation time can be read back (see [`drop_stale_databases_once`]).
fn unique_db_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!(
        "{prefix}_{}_{}_{n}_{:08x}",
        unix_now(),
        std::process::id(),
        rand as u32
    )
}

/// Drops `outboxd_t_<secs>_…` databases older than an hour (once per process; DATABASE_URL only).
async fn drop_stale_databases_once(admin: &tokio_postgres::Client) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'outboxd\\_t\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let cutoff = unix_now().saturating_sub(STALE_AFTER_SECS);
    for row in rows {
        let name: String = row.get(0);
        let created = name
            .strip_prefix("outboxd_t_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c < cutoff) {
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                ))
                .await;
        }
    }
}

/// `url` pointing at database `db` instead (URL or `key=value` form).
fn url_with_db(url: &str, db: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut u = url::Url::parse(url).unwrap_or_else(|e| panic!("bad database URL {url}: {e}"));
        u.set_path(&format!("/{db}"));
        u.to_string()
    } else {
        format!("{url} dbname={db}")
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A PostgreSQL error as `SQLSTATE: message` (the server's own words), or the client's error
/// (connection, protocol) as it describes itself.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Databases and clusters for instruments

/// A new database named `<name_prefix>_<unix secs>_<pid>_<counter>_<random>` on the server at
/// `server_url`, migrated with [`outboxd::migrate`]. Returns its URL and its name.
pub async fn create_database(
    server_url: &str,
    name_prefix: &str,
) -> anyhow::Result<(String, String)> {
    let (url, name) = create_empty_database(server_url, name_prefix).await?;
    let mut client = outboxd::connect(&url)
        .await
        .with_context(|| format!("connecting to the new database {name}"))?;
    outboxd::migrate(&mut client)
        .await
        .with_context(|| format!("migrating {name}"))?;
    Ok((url, name))
}

/// Like [`create_database`], but not migrated: for a caller that migrates it some other way
/// (the chaos soak's live upgrade runs an older `outboxd migrate` on it).
pub async fn create_empty_database(
    server_url: &str,
    name_prefix: &str,
) -> anyhow::Result<(String, String)> {
    let name = unique_db_name(name_prefix);
    let admin = outboxd::connect(server_url)
        .await
        .with_context(|| format!("connecting to {server_url}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .await
        .map_err(|e| anyhow::anyhow!("CREATE DATABASE {name}: {}", pg_error(&e)))?;
    Ok((url_with_db(server_url, &name), name))
}

/// Drops database `name` on the server at `server_url`, disconnecting whoever is still in it.
pub async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = outboxd::connect(server_url)
        .await
        .with_context(|| format!("connecting to {server_url}"))?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| anyhow::anyhow!("DROP DATABASE {name}: {}", pg_error(&e)))
}

/// How [`Cluster::restart`] stops the server before starting it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `pg_ctl stop -m fast`: sessions are ended, a clean shutdown checkpoint is written.
    Fast,
    /// `pg_ctl stop -m immediate`: as far as PostgreSQL can tell, a crash; it runs crash
    /// recovery on start (a real crash test only with `fsync` on).
    Immediate,
}

/// The PostgreSQL server an instrument (or a test that restarts PostgreSQL) works on: someone
/// else's (`DATABASE_URL`), which it never restarts or stops, or a throwaway one it owns
/// ([`EmbeddedPostgres`]), stopped and deleted on drop unless [`detach`](Cluster::detach)ed.
pub struct Cluster {
    /// `None` for a server given by URL, or while a blocking restart runs.
    pg: Option<EmbeddedPostgres>,
    /// The `postgres` database on it: where databases are created and dropped.
    url: String,
}

impl Cluster {
    /// `DATABASE_URL` when it is set, else a throwaway cluster started with `options`
    /// (which then apply to the throwaway cluster only).
    pub async fn from_env_or_throwaway(options: PgOptions) -> anyhow::Result<Cluster> {
        match std::env::var("DATABASE_URL") {
            Ok(url) => Ok(Cluster::at(url)),
            Err(_) => Cluster::throwaway(options).await,
        }
    }

    /// A new throwaway cluster on 127.0.0.1 (about a second; `initdb` runs as the `postgres`
    /// OS user when we are root).
    pub async fn throwaway(options: PgOptions) -> anyhow::Result<Cluster> {
        let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(options))
            .await
            .context("starting PostgreSQL panicked")?
            .context("starting a throwaway PostgreSQL")?;
        Ok(Cluster {
            url: pg.url(),
            pg: Some(pg),
        })
    }

    /// Someone else's server, e.g. `DATABASE_URL`.
    pub fn at(url: impl Into<String>) -> Cluster {
        Cluster {
            pg: None,
            url: url.into(),
        }
    }

    /// The server's URL (its `postgres` database, or the one the given URL names).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        url_with_db(&self.url, db)
    }

    /// The throwaway cluster (data directory, server log, port), unless the server was given
    /// by URL.
    pub fn embedded(&self) -> Option<&EmbeddedPostgres> {
        self.pg.as_ref()
    }

    /// See [`create_database`].
    pub async fn create_database(&self, name_prefix: &str) -> anyhow::Result<(String, String)> {
        create_database(&self.url, name_prefix).await
    }

    /// See [`create_empty_database`].
    pub async fn create_empty_database(
        &self,
        name_prefix: &str,
    ) -> anyhow::Result<(String, String)> {
        create_empty_database(&self.url, name_prefix).await
    }

    /// See [`drop_database`].
    pub async fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        drop_database(&self.url, name).await
    }

    /// Stops the throwaway server and starts it again on the same port and data; every
    /// connection breaks. An error for a server given by URL: we do not restart other people's
    /// servers. If this future is dropped midway, the cluster is stopped and gone.
    pub async fn restart(&mut self, how: Restart) -> anyhow::Result<()> {
        // pg_ctl blocks for as long as the stop and the start take.
        self.blocking(&format!("restarting ({how:?})"), move |pg| {
            pg.restart(how == Restart::Immediate)
        })
        .await
    }

    /// Stops the throwaway server and leaves it stopped (data and port kept) until
    /// [`resume`](Cluster::resume): an outage that lasts. An error for a server given by URL.
    pub async fn halt(&mut self, how: Restart) -> anyhow::Result<()> {
        self.blocking("halting", move |pg| pg.halt(how == Restart::Immediate))
            .await
    }

    /// Starts a [`halt`](Cluster::halt)ed throwaway server again on the same port and data.
    pub async fn resume(&mut self) -> anyhow::Result<()> {
        self.blocking("resuming", |pg| pg.resume()).await
    }

    /// Runs a blocking `pg_ctl` step on the throwaway server, off the async runtime.
    async fn blocking(
        &mut self,
        what: &str,
        step: impl FnOnce(&mut EmbeddedPostgres) -> Result<(), outboxd::embedded_pg::EmbeddedPgError>
        + Send
        + 'static,
    ) -> anyhow::Result<()> {
        let mut pg = self.pg.take().context(
            "not a throwaway cluster: a server given by URL is never restarted or stopped",
        )?;
        let (pg, result) = tokio::task::spawn_blocking(move || {
            let result = step(&mut pg);
            (pg, result)
        })
        .await
        .with_context(|| format!("{what} PostgreSQL panicked"))?;
        self.pg = Some(pg);
        result.with_context(|| format!("{what} PostgreSQL"))
    }

    /// Stops the throwaway server (`-m fast`) and deletes its directory; nothing for a server
    /// given by URL.
    pub async fn stop(&mut self) {
        if let Some(mut pg) = self.pg.take() {
            let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
        }
    }

    /// Leaves the throwaway server running after this handle is gone (e.g. an instrument's
    /// `--keep`); returns its data directory and port.
    pub fn detach(mut self) -> Option<(PathBuf, u16)> {
        self.pg.take().map(EmbeddedPostgres::detach)
    }

    /// The postmaster's pid (throwaway cluster only).
    pub fn postmaster_pid(&self) -> Option<u32> {
        postmaster_pid(self.pg.as_ref()?.data_dir())
    }

    /// CPU seconds the whole throwaway cluster used so far: the postmaster, its live children
    /// (backends, checkpointer, walwriter, …) and the children it has reaped. `None` for a
    /// server given by URL: its processes are not ours to see.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let postmaster = self.postmaster_pid()?;
        let own = process::proc_cpu(postmaster).ok()?;
        let mut total = own.own + own.children;
        for pid in process::children_of(postmaster) {
            if let Ok(c) = process::proc_cpu(pid) {
                total += c.own;
            }
        }
        Some(total)
    }
}

/// The first line of `postmaster.pid` in a data directory.
fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}
