//! A throwaway PgBouncer (Debian's `pgbouncer`, 1.18 here) in front of a test PostgreSQL, in
//! session or transaction pool mode, on a free port of 127.0.0.1. Killed on drop.
//!
//! Its `[databases]` entry is the wildcard `*`: every database of that server is reachable
//! under its own name. Authentication is `trust` for the users given (PgBouncer still wants
//! them listed). PgBouncer refuses to run as root, so as root it runs as the `postgres` OS
//! user, like the server.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
}

impl PoolMode {
    /// PgBouncer's name, which is also `OUTBOXD_POOLER`'s.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// A running PgBouncer.
pub struct PgBouncer {
    child: Child,
    port: u16,
    mode: PoolMode,
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `server_url`'s host and port (a `postgres://` URL), for
    /// `users` (besides `postgres`). Panics with PgBouncer's log when it does not come up.
    pub fn start(server_url: &str, mode: PoolMode, users: &[&str]) -> PgBouncer {
        let server = url::Url::parse(server_url).expect("server URL");
        let host = server.host_str().unwrap_or("127.0.0.1").to_owned();
        let server_port = server.port().unwrap_or(5432);
        let dir = tempfile::Builder::new()
            .prefix("outboxd-pgbouncer.")
            .tempdir()
            .expect("PgBouncer temp dir");
        // The postgres user must reach its config and write its log.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        let port = crate::free_port();
        let mut auth = String::new();
        for user in std::iter::once("postgres").chain(users.iter().copied()) {
            auth.push_str(&format!("\"{user}\" \"\"\n"));
        }
        fs::write(dir.path().join("users.txt"), auth).expect("auth file");
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {auth_file}\n\
             pool_mode = {mode}\n\
             max_client_conn = 1000\n\
             default_pool_size = 60\n\
             server_lifetime = 3600\n\
             server_login_retry = 1\n\
             logfile = {log}\n\
             pidfile = {pid}\n",
            auth_file = dir.path().join("users.txt").display(),
            mode = mode.as_str(),
            log = dir.path().join("pgbouncer.log").display(),
            pid = dir.path().join("pgbouncer.pid").display(),
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        fs::write(&ini_path, ini).expect("pgbouncer.ini");
        let mut cmd = Command::new(binary());
        cmd.arg(&ini_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = server_user() {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary().display()));
        let mut bouncer = PgBouncer {
            child,
            port,
            mode,
            dir,
        };
        bouncer.wait_until_listening();
        bouncer
    }

    fn wait_until_listening(&mut self) {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("PgBouncer exited ({status}):\n{}", self.log());
            }
            if Instant::now() > end {
                panic!("PgBouncer did not listen within 10 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn mode(&self) -> PoolMode {
        self.mode
    }

    /// `postgres://<user>@127.0.0.1:<port>/<db>`, through this PgBouncer.
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// `url` (a URL of the server behind) rewritten to go through this PgBouncer.
    pub fn through(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("database URL");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.port)).expect("port");
        u.to_string()
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- PgBouncer log ---\n{}", self.log());
        }
    }
}

/// `pgbouncer` on `$PATH` or where Debian puts it.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pgbouncer").is_file() {
                return dir.join("pgbouncer");
            }
        }
    }
    Path::new("/usr/sbin/pgbouncer").to_path_buf()
}

/// Whether PgBouncer is installed (`apt-get install pgbouncer`; `.ci/run` installs it).
pub fn available() -> bool {
    binary().is_file()
}

/// (uid, gid) of the `postgres` OS user when this process is root (PostgreSQL and PgBouncer
/// refuse to run as root); `None` otherwise.
pub(crate) fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}
