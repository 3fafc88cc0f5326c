//! A throwaway local PostgreSQL cluster, for `outboxd demo`, the benchmark and the tests.
//!
//! [`EmbeddedPostgres::start`] runs `initdb` into a fresh directory under `/tmp` (or reuses
//! [`Options::data_dir`]), starts the server with `pg_ctl -w` on `127.0.0.1:<port>` with trust
//! authentication for the `postgres` role, and stops it (and deletes the directory it created)
//! when dropped. Starting takes about a second.
//!
//! `initdb` refuses to run as root, so when this process is root every PostgreSQL command runs
//! as the `postgres` OS user (and the temporary directory is owned by it). Otherwise the
//! commands run as the current user.
//!
//! The server binaries are found by [`bin_dir`]. The server settings are the defaults plus
//! `max_connections`, `shared_buffers=256MB`, and, unless [`Options::fsync`] is set,
//! `fsync=off`, `full_page_writes=off`, `synchronous_commit=off`: fine for tests and demos (say
//! so in benchmarks), not durable. A client's crash loses nothing, but a crash of PostgreSQL
//! itself (`kill -9` of a backend, an immediate shutdown) may lose the last ~200 ms of
//! acknowledged commits, still in the WAL buffers; tests that crash PostgreSQL set `fsync`.

use std::ffi::{CStr, CString};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the marker file placed in directories this module created (and may delete).
const TEMP_MARKER: &str = ".outboxd-embedded-pg";
/// How many times a start is retried on a fresh port when the picked one was taken.
const PORT_ATTEMPTS: u32 = 5;

/// Why a local PostgreSQL could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error(
        "no PostgreSQL server binaries found (tried `pg_config --bindir`, /usr/lib/postgresql/*/bin and $PATH); install the PostgreSQL server package"
    )]
    NoBinDir,
    #[error(
        "running as root, but there is no `postgres` OS user to run initdb and the server as (initdb refuses root)"
    )]
    NoPostgresUser,
    #[error("initdb failed ({status}): {stderr}")]
    InitdbFailed { status: String, stderr: String },
    #[error(
        "PostgreSQL failed to start on port {port}: {detail}\n--- server log (tail) ---\n{log_tail}"
    )]
    StartFailed {
        port: u16,
        detail: String,
        log_tail: String,
    },
    #[error("PostgreSQL failed to stop: {0}")]
    StopFailed(String),
    #[error("the cluster's directory was already removed by stop(); start a new one")]
    Removed,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP port on 127.0.0.1; `None` picks a free one (retried if another process grabs it).
    pub port: Option<u16>,
    /// `false` (the default) adds `fsync=off`, `full_page_writes=off`, `synchronous_commit=off`.
    pub fsync: bool,
    /// `max_connections` (default 400).
    pub max_connections: u32,
    /// The PostgreSQL data directory (PGDATA). `None` (the default): a fresh directory under
    /// `/tmp`, deleted by [`EmbeddedPostgres::stop`]. `Some(dir)`: `initdb` runs only if `dir`
    /// holds no cluster yet (no `PG_VERSION`), and the directory is kept; the server log and the
    /// Unix socket go into `dir` too.
    pub data_dir: Option<PathBuf>,
    /// Extra `-c name=value` server settings, applied after the ones above.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: None,
            fsync: false,
            max_connections: 400,
            data_dir: None,
            settings: Vec::new(),
        }
    }
}

/// The OS user the PostgreSQL commands run as (only set when we are root).
#[derive(Debug, Clone)]
struct RunAs {
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// A running local PostgreSQL cluster. Stopped (and its temporary directory removed) on drop,
/// unless [`detach`](EmbeddedPostgres::detach)ed.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bin: PathBuf,
    run_as: Option<RunAs>,
    /// Directory we created (holds `data/`, `log`, the socket); removed on stop.
    temp_root: Option<PathBuf>,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    opts: Options,
    running: bool,
    removed: bool,
    detached: bool,
}

impl EmbeddedPostgres {
    /// Creates (or reuses, see [`Options::data_dir`]) a cluster and starts it. Synchronous:
    /// call it from `tokio::task::spawn_blocking` in async code if a second of blocking matters.
    pub fn start(opts: Options) -> Result<Self, EmbeddedPgError> {
        let bin = bin_dir()?;
        let run_as = run_as()?;
        let (temp_root, data, socket_dir, log) = match &opts.data_dir {
            None => {
                let root = make_temp_dir(run_as.as_ref())?;
                (
                    Some(root.clone()),
                    root.join("data"),
                    root.clone(),
                    root.join("log"),
                )
            }
            Some(dir) => {
                if !dir.exists() {
                    fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(io_err(format!("creating {}", dir.display())))?;
                    if let Some(u) = &run_as {
                        chown(dir, u)?;
                    }
                }
                (
                    None,
                    dir.clone(),
                    dir.clone(),
                    dir.join("outboxd-postgres.log"),
                )
            }
        };
        let mut pg = EmbeddedPostgres {
            bin,
            run_as,
            temp_root,
            data,
            socket_dir,
            log,
            port: 0,
            opts,
            running: false,
            removed: false,
            detached: false,
        };
        // On any error from here, dropping `pg` removes the temporary directory.
        if !pg.data.join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        pg.start_with_port_retries()?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` on this cluster (as the `postgres` superuser, no password).
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (PGDATA).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// `pg_ctl stop -m fast`, then removes the directory if this module created it.
    /// Idempotent; errors are ignored (the directory is removed anyway).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.pg_ctl_stop("fast");
            self.running = false;
        }
        if let Some(root) = &self.temp_root
            && !self.removed
        {
            let _ = fs::remove_dir_all(root);
            self.removed = true;
        }
    }

    /// Stops the server (`-m immediate`, i.e. a crash as far as PostgreSQL is concerned, when
    /// `immediate`; `-m fast` otherwise) and starts it again on the same port and data directory.
    /// For fault-injection tests. Existing connections are broken.
    pub fn restart(&mut self, immediate: bool) -> Result<(), EmbeddedPgError> {
        if self.removed {
            return Err(EmbeddedPgError::Removed);
        }
        if self.running {
            self.pg_ctl_stop(if immediate { "immediate" } else { "fast" })?;
            self.running = false;
        }
        self.start_on(self.port)?;
        Ok(())
    }

    /// Leaves the server running after `self` is gone; returns its data directory and port.
    /// Stop it later with [`stop_detached`].
    pub fn detach(mut self) -> (PathBuf, u16) {
        self.detached = true;
        (self.data.clone(), self.port)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        configure(&mut cmd, self.run_as.as_ref(), &self.socket_dir);
        cmd
    }

    fn initdb(&self) -> Result<(), EmbeddedPgError> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .map_err(io_err("running initdb"))?;
        if !out.status.success() {
            return Err(EmbeddedPgError::InitdbFailed {
                status: out.status.to_string(),
                stderr: output_text(&out),
            });
        }
        Ok(())
    }

    fn start_with_port_retries(&mut self) -> Result<(), EmbeddedPgError> {
        if let Some(port) = self.opts.port {
            return self.start_on(port);
        }
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match self.start_on(port) {
                Ok(()) => return Ok(()),
                Err(EmbeddedPgError::StartFailed {
                    port,
                    detail,
                    log_tail,
                }) if is_bind_failure(&log_tail) => {
                    last = Some(EmbeddedPgError::StartFailed {
                        port,
                        detail,
                        log_tail,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn start_on(&mut self, port: u16) -> Result<(), EmbeddedPgError> {
        let log_offset = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let mut o = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections={} -c shared_buffers=256MB",
            shell_quote(&self.socket_dir.to_string_lossy()),
            self.opts.max_connections
        );
        if !self.opts.fsync {
            o.push_str(" -c fsync=off -c full_page_writes=off -c synchronous_commit=off");
        }
        for (k, v) in &self.opts.settings {
            o.push_str(" -c ");
            o.push_str(&shell_quote(&format!("{k}={v}")));
        }
        let out = self
            .command("pg_ctl")
            .arg("-w")
            .args(["-t", "60"])
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("start")
            .arg("-o")
            .arg(o)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("running pg_ctl start"))?;
        if !out.status.success() {
            // pg_ctl may leave a half-started postmaster behind on timeout; make sure it's gone.
            let _ = self.pg_ctl_stop("immediate");
            return Err(EmbeddedPgError::StartFailed {
                port,
                detail: output_text(&out),
                log_tail: log_tail(&self.log, log_offset, 40),
            });
        }
        self.port = port;
        self.running = true;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), EmbeddedPgError> {
        pg_ctl_stop(&self.bin, self.run_as.as_ref(), &self.data, mode)
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

/// Stops a cluster left running by [`EmbeddedPostgres::detach`] (`pg_ctl stop -m immediate`,
/// as the right OS user) and removes its directory if this module created it. Errors are
/// ignored: the cluster may already be gone.
pub fn stop_detached(data_dir: &Path) {
    if let (Ok(bin), Ok(run_as)) = (bin_dir(), run_as())
        && data_dir.join("PG_VERSION").exists()
    {
        let _ = pg_ctl_stop(&bin, run_as.as_ref(), data_dir, "immediate");
    }
    if let Some(root) = data_dir.parent()
        && root.join(TEMP_MARKER).exists()
    {
        let _ = fs::remove_dir_all(root);
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir` if it holds
/// `initdb`, else the highest-versioned `/usr/lib/postgresql/*/bin`, else the `$PATH` entry
/// holding `initdb`.
pub fn bin_dir() -> Result<PathBuf, EmbeddedPgError> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut best: Option<(Vec<u64>, PathBuf)> = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(version) = name
                .split('.')
                .map(str::parse::<u64>)
                .collect::<Result<Vec<u64>, _>>()
            else {
                continue;
            };
            let dir = entry.path().join("bin");
            if dir.join("initdb").is_file() && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, dir));
            }
        }
        if let Some((_, dir)) = best {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() {
                return Ok(dir);
            }
        }
    }
    Err(EmbeddedPgError::NoBinDir)
}

/// `Some(postgres user)` when we are root, `None` otherwise.
fn run_as() -> Result<Option<RunAs>, EmbeddedPgError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    lookup_user("postgres")
        .map(Some)
        .ok_or(EmbeddedPgError::NoPostgresUser)
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; getpwnam_r fills it and points its strings into `buf`,
    // which outlives every use below.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            return None;
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            PathBuf::from(CStr::from_ptr(pwd.pw_dir).to_string_lossy().into_owned())
        };
        Some(RunAs {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        })
    }
}

fn chown(path: &Path, user: &RunAs) -> Result<(), EmbeddedPgError> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| EmbeddedPgError::Io {
        context: format!("path {} contains NUL", path.display()),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::chown(c.as_ptr(), user.uid, user.gid) } != 0 {
        return Err(EmbeddedPgError::Io {
            context: format!("chown {} to the postgres user", path.display()),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A new `0700` directory `/tmp/outboxd-pg.<pid>.<nanos>.<n>`, owned by the server's user.
fn make_temp_dir(run_as: Option<&RunAs>) -> Result<PathBuf, EmbeddedPgError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Always /tmp, not $TMPDIR: the postgres user must be able to reach it, and the socket path
    // must stay short.
    let base = Path::new("/tmp");
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "outboxd-pg.{}.{nanos}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                let marker = dir.join(TEMP_MARKER);
                let setup = fs::write(&marker, b"created by outboxd::embedded_pg\n")
                    .map_err(io_err(format!("writing {}", marker.display())))
                    .and_then(|()| run_as.map_or(Ok(()), |u| chown(&dir, u)));
                if let Err(e) = setup {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
}

fn configure(cmd: &mut Command, run_as: Option<&RunAs>, cwd: &Path) {
    // A working directory the server's user can enter (ours may be /root/...).
    cmd.current_dir(cwd)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .env_remove("PGHOST")
        .env_remove("PGOPTIONS");
    if let Some(u) = run_as {
        cmd.uid(u.uid).gid(u.gid).env("HOME", &u.home);
    }
}

fn pg_ctl_stop(
    bin: &Path,
    run_as: Option<&RunAs>,
    data: &Path,
    mode: &str,
) -> Result<(), EmbeddedPgError> {
    let cwd = data.parent().unwrap_or(Path::new("/"));
    let mut cmd = Command::new(bin.join("pg_ctl"));
    configure(&mut cmd, run_as, cwd);
    let out = cmd
        .args(["-w", "-t", "60", "-D"])
        .arg(data)
        .args(["-m", mode, "stop"])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running pg_ctl stop"))?;
    if !out.status.success() {
        return Err(EmbeddedPgError::StopFailed(output_text(&out)));
    }
    Ok(())
}

fn free_port() -> Result<u16, EmbeddedPgError> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("picking a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("picking a free port"))?
        .port();
    Ok(port)
}

fn is_bind_failure(log: &str) -> bool {
    log.contains("could not bind")
        || log.contains("Address already in use")
        || log.contains("could not create any TCP/IP sockets")
}

fn output_text(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(stdout.trim());
    }
    s
}

/// The last `lines` lines of `path` written after byte `offset`.
fn log_tail(path: &Path, offset: u64, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Quotes `s` for the `/bin/sh -c` command line pg_ctl builds from `-o`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=,:".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn select_one(url: &str) -> i32 {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .query_one("SELECT 1", &[])
            .await
            .expect("query")
            .get(0)
    }

    #[test]
    fn start_query_restart_drop() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut pg = EmbeddedPostgres::start(Options::default()).expect("start");
        let data = pg.data_dir().to_path_buf();
        let root = data.parent().unwrap().to_path_buf();
        assert!(data.join("PG_VERSION").exists());
        assert!(pg.url().ends_with("/postgres"));
        assert_eq!(rt.block_on(select_one(&pg.url())), 1);

        let port = pg.port();
        pg.restart(true).expect("restart");
        assert_eq!(pg.port(), port);
        assert_eq!(rt.block_on(select_one(&pg.url_for("template1"))), 1);

        drop(pg);
        assert!(!root.exists(), "{} should be removed", root.display());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/tmp/x.y"), "/tmp/x.y");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn bin_dir_has_initdb() {
        // Only meaningful where PostgreSQL is installed; elsewhere it must say so clearly.
        match bin_dir() {
            Ok(dir) => assert!(dir.join("initdb").is_file()),
            Err(e) => assert!(matches!(e, EmbeddedPgError::NoBinDir)),
        }
    }
}
