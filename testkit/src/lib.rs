//! Integration-test harness: migrated throwaway databases, a recording webhook receiver,
//! and the `outboxd` binary as a child process.
//!
//! Used by the integration tests (`tests/spec`), the benchmark and the chaos soak (`tools/`).
//!
//! # Databases
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
//! * Tests that restart or kill PostgreSQL must start their own
//!   [`outboxd::embedded_pg::EmbeddedPostgres`], never touch the shared cluster.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use outboxd::embedded_pg::{self, EmbeddedPostgres};

pub mod pgbouncer;
pub mod tls;

/// The Standard Webhooks test-vector secret; the default for [`Receiver`]s.
pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Name of the migrated template database every test database is cloned from.
pub const TEMPLATE_DB: &str = "outboxd_template";

const STATE_DIR: &str = "/tmp/outboxd-test-pg";
/// Advisory lock guarding the template: shared while cloning, exclusive while rebuilding.
const TEMPLATE_LOCK: i64 = 7_355_608_101;
const STALE_AFTER_SECS: u64 = 3600;

// ---------------------------------------------------------------------------------------------
// Databases

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
    let name = unique_db_name();
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
    let result = tokio::task::spawn_blocking(|| CLUSTER.get_or_init(shared_cluster).clone())
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

fn unique_db_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let rand = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!(
        "outboxd_t_{}_{}_{n}_{:08x}",
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

fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// --- the shared per-run cluster (blocking; runs in spawn_blocking) ---

#[derive(Debug, Clone)]
struct ClusterEntry {
    run_id: String,
    owner_pid: i32,
    owner_start: u64,
    port: u16,
    data_dir: PathBuf,
}

impl ClusterEntry {
    fn parse(line: &str) -> Option<Self> {
        let mut f = line.split('\t');
        let e = ClusterEntry {
            run_id: f.next()?.to_owned(),
            owner_pid: f.next()?.parse().ok()?,
            owner_start: f.next()?.parse().ok()?,
            port: f.next()?.parse().ok()?,
            data_dir: PathBuf::from(f.next()?),
        };
        (!e.run_id.is_empty()).then_some(e)
    }

    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            self.run_id,
            self.owner_pid,
            self.owner_start,
            self.port,
            self.data_dir.display()
        )
    }

    /// The postmaster recorded in the data dir is alive, on our port, and accepts TCP.
    fn answers(&self) -> bool {
        let Ok(pidfile) = fs::read_to_string(self.data_dir.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = pidfile.lines().collect();
        let pid_ok = lines
            .first()
            .and_then(|l| l.trim().parse::<i32>().ok())
            .is_some_and(|pid| process_alive(pid, 0));
        let port_ok = lines.get(3).and_then(|l| l.trim().parse::<u16>().ok()) == Some(self.port);
        pid_ok
            && port_ok
            && TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_secs(2),
            )
            .is_ok()
    }
}

/// (run id, owner pid, owner start time): the nextest runner for a nextest run, else us.
fn current_run() -> (String, i32, u64) {
    if let Ok(id) = std::env::var("NEXTEST_RUN_ID")
        && !id.is_empty()
    {
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        return (id, ppid, process_start(ppid).unwrap_or(0));
    }
    let pid = std::process::id() as i32;
    let start = process_start(pid).unwrap_or(0);
    (format!("cargo-test-{pid}-{start}"), pid, start)
}

/// Start time of a process in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn process_start(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// `pid` exists (and, when `start` is known, is the same process as when recorded).
fn process_alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && (start == 0 || process_start(pid).is_none_or(|s| s == start))
}

/// Finds or starts this run's cluster under the state-dir flock; returns its URL.
fn shared_cluster() -> Result<String, String> {
    fs::create_dir_all(STATE_DIR).map_err(|e| format!("creating {STATE_DIR}: {e}"))?;
    let lock_path = Path::new(STATE_DIR).join("lock");
    let lock_file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    loop {
        // SAFETY: a valid open fd; the lock is released when `lock_file` is closed.
        if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("flock {}: {err}", lock_path.display()));
        }
    }

    let state_path = Path::new(STATE_DIR).join("state");
    let mut state = String::new();
    if let Ok(mut f) = fs::File::open(&state_path) {
        let _ = f.read_to_string(&mut state);
    }
    let (run_id, owner_pid, owner_start) = current_run();
    let mut keep = Vec::new();
    let mut mine: Option<ClusterEntry> = None;
    for entry in state.lines().filter_map(ClusterEntry::parse) {
        if entry.run_id == run_id {
            if mine.is_none() && entry.answers() {
                mine = Some(entry);
            } else {
                embedded_pg::stop_detached(&entry.data_dir);
            }
        } else if process_alive(entry.owner_pid, entry.owner_start) {
            keep.push(entry); // a concurrent test run is still using it
        } else {
            embedded_pg::stop_detached(&entry.data_dir);
        }
    }
    let mine = match mine {
        Some(m) => m,
        None => {
            let started = Instant::now();
            let pg = EmbeddedPostgres::start(embedded_pg::Options::default())
                .map_err(|e| e.to_string())?;
            let (data_dir, port) = pg.detach();
            if std::env::var_os("OUTBOXD_TEST_VERBOSE").is_some() {
                eprintln!(
                    "outboxd tests: started shared PostgreSQL on port {port} in {:?}",
                    started.elapsed()
                );
            }
            ClusterEntry {
                run_id,
                owner_pid,
                owner_start,
                port,
                data_dir,
            }
        }
    };
    keep.push(mine.clone());
    let tmp = Path::new(STATE_DIR).join(format!("state.tmp.{}", std::process::id()));
    let text: String = keep.iter().map(ClusterEntry::line).collect();
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&tmp, &state_path))
        .map_err(|e| format!("writing {}: {e}", state_path.display()))?;
    drop(lock_file);
    Ok(format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        mine.port
    ))
}

// ---------------------------------------------------------------------------------------------
// Polling

/// Polls `f` every 20 ms until it returns true; panics mentioning `what` after `deadline`.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `OUTBOXD_LISTEN`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// What the [`Receiver`] answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Sleep this long before answering (simulates a slow or hung endpoint).
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// `200`, immediately, empty body.
    pub fn ok() -> Self {
        Reply::status(200)
    }

    /// `status`, immediately, empty body.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }
}

/// Decides the reply to a request; the `u64` is the request's 0-based arrival number.
pub type Behaviour = Arc<dyn Fn(&ReceivedRequest, u64) -> Reply + Send + Sync>;

/// Wraps a closure as a [`Behaviour`].
pub fn behaviour(f: impl Fn(&ReceivedRequest, u64) -> Reply + Send + Sync + 'static) -> Behaviour {
    Arc::new(f)
}

/// Always answers `reply`.
pub fn always(reply: Reply) -> Behaviour {
    Arc::new(move |_, _| reply.clone())
}

/// One request the [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// When the request (headers and body) had arrived.
    pub at: Instant,
    /// `webhook-id` ("" if missing).
    pub id: String,
    /// `webhook-timestamp` (0 if missing or not a number).
    pub timestamp: i64,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The `standardwebhooks` crate accepted the signature (with the receiver's secret; this
    /// also checks the timestamp is within 5 minutes of now).
    pub signature_ok: bool,
    /// The status the behaviour chose (0 while the behaviour is being asked).
    pub answered: u16,
    /// The handler got to send the answer: false while a [`Reply::delay`] is running, and stays
    /// false if the client hung up first (as far as the HTTP server noticed).
    pub completed: bool,
    /// 0-based arrival number (the one passed to the behaviour).
    pub seq: u64,
    pub method: Method,
    /// Path and query, e.g. `/hook`.
    pub path: String,
}

struct ReceiverShared {
    webhook: standardwebhooks::Webhook,
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<ReceivedRequest>>,
    seq: AtomicU64,
    /// Bumped on every change to `requests`.
    changes: tokio::sync::watch::Sender<u64>,
}

impl ReceiverShared {
    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }
}

/// A real HTTP server on 127.0.0.1 recording every request (any method, any path) and
/// answering as its [`Behaviour`] says. Stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<ReceiverShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver verifying signatures with `secret` (a `whsec_…` string).
    pub async fn start(secret: &str, behaviour: Behaviour) -> Receiver {
        let webhook = standardwebhooks::Webhook::new(secret)
            .unwrap_or_else(|e| panic!("bad receiver secret: {e:?}"));
        let shared = Arc::new(ReceiverShared {
            webhook,
            behaviour: Mutex::new(behaviour),
            requests: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            changes: tokio::sync::watch::Sender::new(0),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::max(128 * 1024 * 1024))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    /// A receiver answering `200` to everything.
    pub async fn ok(secret: &str) -> Receiver {
        Receiver::start(secret, always(Reply::ok())).await
    }

    /// Replaces the behaviour for requests arriving from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// `http://127.0.0.1:<port>/hook`
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Forgets the recorded requests (the arrival numbers keep counting).
    pub fn clear(&self) {
        self.shared.requests.lock().unwrap().clear();
        self.shared.changed();
    }

    /// Waits (without polling) until at least `n` requests have arrived; false on timeout.
    pub async fn wait_for_count(&self, n: usize, deadline: Duration) -> bool {
        self.wait_for(deadline, |reqs| reqs.len() >= n).await
    }

    /// Waits until `pred` holds for the recorded requests, re-checking on every new request
    /// or completed answer; false on timeout.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        mut pred: impl FnMut(&[ReceivedRequest]) -> bool,
    ) -> bool {
        let mut rx = self.shared.changes.subscribe();
        let wait = async {
            loop {
                if pred(&self.shared.requests.lock().unwrap()) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(deadline, wait).await.unwrap_or(false)
    }

    /// webhook-id → number of requests answered 2xx (and completed).
    pub fn successes_by_id(&self) -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for r in self.shared.requests.lock().unwrap().iter() {
            if r.completed && (200..300).contains(&r.answered) {
                *map.entry(r.id.clone()).or_insert(0) += 1;
            }
        }
        map
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<ReceiverShared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp").parse().unwrap_or(0);
    let signature_ok = shared.webhook.verify(&body, &headers).is_ok();
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let mut req = ReceivedRequest {
        at,
        id,
        timestamp,
        headers,
        body,
        signature_ok,
        answered: 0,
        completed: false,
        seq,
        method,
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
    };
    let behaviour = shared.behaviour.lock().unwrap().clone();
    let reply = behaviour(&req, seq);
    req.answered = reply.status;
    req.completed = reply.delay.is_zero();
    let index = {
        let mut reqs = shared.requests.lock().unwrap();
        reqs.push(req);
        reqs.len() - 1
    };
    shared.changed();
    if !reply.delay.is_zero() {
        // Dropped here if the client disconnects and the server notices.
        tokio::time::sleep(reply.delay).await;
        if let Some(r) = shared.requests.lock().unwrap().get_mut(index)
            && r.seq == seq
        {
            r.completed = true;
        }
        shared.changed();
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body).into_response();
    for (name, value) in &reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

// ---------------------------------------------------------------------------------------------
// The outboxd binary

/// `outboxd` running as a child process, output going to a log file. Killed (SIGKILL) on drop;
/// if the test is panicking, the end of its log is printed.
pub struct Sidecar {
    child: Child,
    exit: Option<ExitStatus>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Spawns `outboxd <args>` with `DATABASE_URL=database_url` and `envs` (e.g.
    /// `("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8")`). `DATABASE_URL` and `OUTBOXD_*` from the
    /// test's own environment are not passed on; `RUST_LOG` defaults to `info`.
    pub fn spawn(
        bin: impl AsRef<Path>,
        database_url: &str,
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> Sidecar {
        let bin = bin.as_ref();
        let dir = tempfile::Builder::new()
            .prefix("outboxd-sidecar.")
            .tempdir()
            .expect("sidecar temp dir");
        let log = dir.path().join("outboxd.log");
        let out = fs::File::create(&log).expect("sidecar log file");
        let err = out.try_clone().expect("sidecar log file");
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key == "DATABASE_URL" || key.to_string_lossy().starts_with("OUTBOXD_") {
                cmd.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.env("DATABASE_URL", database_url)
            .envs(envs.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Sidecar {
            child,
            exit: None,
            log,
            _dir: dir,
        }
    }

    /// `outboxd run`.
    pub fn run(bin: impl AsRef<Path>, database_url: &str, envs: &[(&str, &str)]) -> Sidecar {
        Sidecar::spawn(bin, database_url, envs, &["run"])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Still running (not exited, not reaped)?
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// SIGKILL, and reap it: when this returns the process is gone.
    pub fn kill9(&mut self) {
        if self.poll_exit().is_none() {
            self.signal(libc::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status);
            }
        }
    }

    /// Sends SIGTERM (graceful shutdown); see [`wait_exit`](Sidecar::wait_exit).
    pub fn sigterm(&mut self) {
        if self.poll_exit().is_none() {
            self.signal(libc::SIGTERM);
        }
    }

    /// Waits up to `timeout` for the process to exit (polling every 20 ms, without blocking the
    /// async runtime); `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own, not yet reaped, child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- outboxd (pid {}) log, last {} lines ---\n{}",
                self.child.id(),
                lines.len().min(200),
                lines[lines.len().saturating_sub(200)..].join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In-process engine configuration

#[derive(clap::Parser)]
#[command(args_override_self = true)]
struct EngineCli {
    #[command(flatten)]
    run: outboxd::RunArgs,
}

/// Engine configuration for tests: listener on a free port, fast polling and retries, no
/// jitter; `extra` flags override (later flags win).
pub fn engine_config(db: &TestDb, extra: &[&str]) -> outboxd::Config {
    use clap::Parser;
    let mut args = vec![
        "outboxd",
        "--listen",
        "127.0.0.1:0",
        "--poll-interval",
        "50ms",
        "--retry-schedule",
        "50ms,100ms,200ms",
        "--retry-jitter",
        "0",
        "--request-timeout",
        "2s",
        "--shutdown-grace",
        "3s",
    ];
    args.extend_from_slice(extra);
    EngineCli::parse_from(args)
        .run
        .into_config(db.url.clone())
        .expect("valid test config")
}

/// The `outboxd` binary an instrument runs, as given by its `--outboxd` flag or `OUTBOXD_BIN`.
/// No instrument builds it: build it first (`cargo build --release --bin outboxd`). Returns
/// the path and a line describing it (size and build time), for the run's header, or an
/// error that says what to do.
pub fn outboxd_binary(given: Option<&Path>) -> Result<(PathBuf, String), String> {
    let path = given.ok_or_else(|| {
        "which outboxd binary? pass --outboxd PATH or set OUTBOXD_BIN \
         (build it first: cargo build --release --bin outboxd; then \
         --outboxd target/release/outboxd)"
            .to_owned()
    })?;
    let meta = fs::metadata(path).map_err(|e| {
        format!(
            "--outboxd / OUTBOXD_BIN {}: {e} (build it with cargo build --release --bin outboxd)",
            path.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "--outboxd / OUTBOXD_BIN {}: not a file",
            path.display()
        ));
    }
    let built = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(
            || "?".to_owned(),
            |d| format!("{} s ago", unix_now().saturating_sub(d.as_secs())),
        );
    Ok((
        path.to_path_buf(),
        format!("{} (built {built})", path.display()),
    ))
}
