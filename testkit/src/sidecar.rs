//! The `outboxd` binary as a child process: what the spec tests, the bench and the chaos soak
//! run. Output goes to a log file; the handle sends SIGKILL or SIGTERM, waits for the exit
//! with a deadline, finds the listen address and readiness, and reads the process's CPU time
//! and peak memory. A test that panics gets the end of the log printed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::poll::POLL_EVERY;
use crate::process;

/// How many lines of the log a panicking test prints.
const TAIL_ON_PANIC: usize = 200;

/// `outboxd` running as a child process, its stdout and stderr going to one log file. Killed
/// (SIGKILL) on drop; if the thread is panicking, the end of its log is printed.
pub struct Sidecar {
    child: Child,
    exit: Option<ExitStatus>,
    log: PathBuf,
    /// Where the log lives unless the caller chose a path; removed on drop.
    _dir: Option<tempfile::TempDir>,
    /// The listener's address, once [`wait_started`](Sidecar::wait_started) found it.
    listen: Option<SocketAddr>,
}

/// How to start a [`Sidecar`]; from [`Sidecar::command`].
///
/// The environment is the caller's minus `DATABASE_URL` and every `OUTBOXD_*` (a developer's
/// shell must not change what a test or a benchmark runs), plus what is given here;
/// `RUST_LOG` defaults to `info` (`OUTBOXD_LOG`, if given, wins over it in outboxd).
#[must_use]
pub struct SidecarCommand {
    bin: PathBuf,
    envs: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    log: Option<PathBuf>,
    kill_with_parent: bool,
}

impl SidecarCommand {
    /// Sets `DATABASE_URL`.
    pub fn database_url(self, url: &str) -> Self {
        self.env("DATABASE_URL", url)
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn envs<K, V>(mut self, envs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.envs
            .extend(envs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<A: Into<OsString>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Writes the log to `path` (created, with its directory) instead of a temporary directory
    /// removed on drop: for instruments that keep logs.
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    /// Has the kernel SIGKILL the process when the thread that spawned it ends (e.g. the
    /// instrument is killed), so no replica outlives a crashed soak. The *thread*: spawn from
    /// one that lives as long as the child (the main thread, a runtime worker), never from
    /// `spawn_blocking`.
    pub fn kill_with_parent(mut self) -> Self {
        self.kill_with_parent = true;
        self
    }

    pub fn spawn(self) -> std::io::Result<Sidecar> {
        let with_context = |what: String| {
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
        };
        let (dir, log) = match self.log {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .map_err(with_context(format!("creating {}", parent.display())))?;
                }
                (None, path)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("outboxd-sidecar.")
                    .tempdir()?;
                let log = dir.path().join("outboxd.log");
                (Some(dir), log)
            }
        };
        let out =
            fs::File::create(&log).map_err(with_context(format!("creating {}", log.display())))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            // The proxy variables too: a sidecar uses a proxy only when its test says so.
            let proxy = ["HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"]
                .iter()
                .any(|p| key.to_string_lossy().eq_ignore_ascii_case(p));
            if key == "DATABASE_URL" || key.to_string_lossy().starts_with("OUTBOXD_") || proxy {
                cmd.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        cmd.envs(self.envs)
            .args(self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if self.kill_with_parent {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(with_context(format!("spawning {}", self.bin.display())))?;
        Ok(Sidecar {
            child,
            exit: None,
            log,
            _dir: dir,
            listen: None,
        })
    }
}

impl Sidecar {
    /// A command to configure and [`spawn`](SidecarCommand::spawn).
    pub fn command(bin: impl AsRef<Path>) -> SidecarCommand {
        SidecarCommand {
            bin: bin.as_ref().to_path_buf(),
            envs: Vec::new(),
            args: Vec::new(),
            log: None,
            kill_with_parent: false,
        }
    }

    /// Spawns `bin <args>` with `DATABASE_URL=database_url` and `envs` (e.g.
    /// `("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8")`), logging to a temporary file. Panics if it
    /// cannot be spawned.
    pub fn spawn(
        bin: impl AsRef<Path>,
        database_url: &str,
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> Sidecar {
        Sidecar::command(bin)
            .database_url(database_url)
            .envs(envs.iter().copied())
            .args(args)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
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
        read_lossy(&self.log)
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Still running (not exited)?
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How it exited, if it has (reaping it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status);
        }
        self.exit
    }

    /// SIGKILL, and reap it: when this returns the process is gone.
    pub fn kill9(&mut self) {
        if self.exit_status().is_none() {
            self.signal(libc::SIGKILL);
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status);
            }
        }
    }

    /// Sends SIGTERM (graceful shutdown); see [`wait_exit`](Sidecar::wait_exit).
    pub fn sigterm(&mut self) {
        if self.exit_status().is_none() {
            self.signal(libc::SIGTERM);
        }
    }

    /// Waits up to `timeout` for the process to exit (polling every 20 ms, without blocking the
    /// async runtime); `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// SIGTERM, then up to `grace` for the exit; after that SIGKILL. The exit status, or `None`
    /// if it had to be killed.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.sigterm();
        let status = self.wait_exit(grace).await;
        if status.is_none() {
            self.kill9();
        }
        status
    }

    /// Waits until the log says `outboxd started` and returns the listener's address from
    /// that line (text or JSON log format); an error with the log's end if the process exits
    /// first or `timeout` passes.
    pub async fn wait_started(&mut self, timeout: Duration) -> Result<SocketAddr, String> {
        let log = self.log.clone();
        let addr = self
            .poll_while_running(timeout, "started", || {
                let found = started_listen_addr(&read_lossy(&log))
                    .ok_or_else(|| "no `outboxd started` line yet".to_owned());
                std::future::ready(found)
            })
            .await?;
        self.listen = Some(addr);
        Ok(addr)
    }

    /// The listener's address, once [`wait_started`](Sidecar::wait_started) has seen it.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// The inbound listener's address (`OUTBOXD_INBOUND_LISTEN`, logged before `outboxd
    /// started`), once [`wait_started`](Sidecar::wait_started) returned; `None` when it is off.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        logged_addr(&self.log(), "inbound listener started", "inbound")
    }

    /// Polls `GET http://<listen>/readyz` until it answers 200; an error with the last answer
    /// and the log's end if the process exits first or `timeout` passes.
    pub async fn wait_ready(
        &mut self,
        listen: SocketAddr,
        timeout: Duration,
    ) -> Result<(), String> {
        let http = http_client();
        let url = format!("http://{listen}/readyz");
        self.poll_while_running(timeout, "ready", || {
            let (http, url) = (&http, &url);
            async move {
                match http.get(url).send().await {
                    Ok(resp) if resp.status().is_success() => Ok(()),
                    Ok(resp) => Err(format!(
                        "{url}: {} {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    )),
                    Err(e) => Err(format!("{url}: {e}")),
                }
            }
        })
        .await
    }

    /// Polls `check` every 20 ms until it succeeds; its last complaint and the end of the log
    /// if the process exits first or `timeout` passes (`what` the process was waited to be).
    /// (A closure returning a future rather than an async closure: its future is `Send` when
    /// what it captures is, so callers can wait from a spawned task.)
    async fn poll_while_running<T, F, Fut>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut check: F,
    ) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let end = Instant::now() + timeout;
        loop {
            let not_yet = match check().await {
                Ok(done) => return Ok(done),
                Err(why) => why,
            };
            if let Some(status) = self.exit_status() {
                return Err(format!(
                    "outboxd exited before it was {what} ({status}):\n{}",
                    self.log_tail(30)
                ));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "outboxd was not {what} within {timeout:?} ({not_yet}):\n{}",
                    self.log_tail(30)
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The `/metrics` text of the sidecar listening at `listen` (see [`parse_metrics`]).
    pub async fn metrics(&self, listen: SocketAddr) -> Result<String, String> {
        let url = format!("http://{listen}/metrics");
        let resp = http_client()
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        resp.text().await.map_err(|e| format!("{url}: {e}"))
    }

    /// CPU seconds (user + system) the process used so far; `None` once it is gone.
    pub fn cpu_seconds(&self) -> Option<f64> {
        process::proc_cpu(self.pid()).ok().map(|c| c.own)
    }

    /// Its peak resident memory (`VmHWM`), in KiB; `None` once it is gone.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        process::proc_status_kib(self.pid(), "VmHWM")
    }

    /// Its resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        process::proc_status_kib(self.pid(), "VmRSS")
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
            eprintln!(
                "--- outboxd (pid {}) log, last {TAIL_ON_PANIC} lines at most ---\n{}",
                self.child.id(),
                self.log_tail(TAIL_ON_PANIC)
            );
        }
    }
}

/// A file's text, invalid UTF-8 replaced; empty if it cannot be read.
fn read_lossy(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

/// The `listen` field of the `outboxd started` line, in the text or the JSON log format.
fn started_listen_addr(log: &str) -> Option<SocketAddr> {
    logged_addr(log, "outboxd started", "listen")
}

/// The address in field `field` of the first log line containing `message`, in the text or
/// the JSON log format.
fn logged_addr(log: &str, message: &str, field: &str) -> Option<SocketAddr> {
    let line = strip_ansi(log.lines().find(|l| l.contains(message))?);
    if line.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        let value = v
            .get("fields")
            .and_then(|f| f.get(field))
            .or_else(|| v.get(field))?;
        return value.as_str()?.parse().ok();
    }
    let (_, rest) = line.split_once(&format!("{field}="))?;
    rest.split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

/// `text` without terminal colour codes (`ESC [ … letter`), which outboxd's text log has when
/// colours are on.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Prometheus text → `name{labels}` → value (comments and unparsable lines skipped).
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.trim().to_owned(), value.parse().ok()?))
        })
        .collect()
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
            |d| {
                format!(
                    "{} s ago",
                    crate::db::unix_now().saturating_sub(d.as_secs())
                )
            },
        );
    Ok((
        path.to_path_buf(),
        format!("{} (built {built})", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listen_address_in_text_and_json_logs() {
        let text = "2026-01-01T00:00:00Z  \u{1b}[32m INFO\u{1b}[0m outboxd::engine: outboxd started \
                    \u{1b}[3mlisten\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:4321 replica=\"r1\"";
        assert_eq!(
            started_listen_addr(text),
            Some(([127, 0, 0, 1], 4321).into())
        );
        let json =
            r#"{"level":"INFO","fields":{"message":"outboxd started","listen":"127.0.0.1:99"}}"#;
        assert_eq!(
            started_listen_addr(&format!("starting\n{json}\n")),
            Some(([127, 0, 0, 1], 99).into())
        );
        assert_eq!(started_listen_addr("outboxd starting"), None);
    }

    #[test]
    fn parses_prometheus_text() {
        let m = parse_metrics(
            "# HELP x y\n# TYPE outboxd_db_errors_total counter\n\
             outboxd_db_errors_total 3\noutboxd_deliveries_dead{endpoint=\"1\"} 2.5\nbad line\n",
        );
        assert_eq!(m.get("outboxd_db_errors_total"), Some(&3.0));
        assert_eq!(m.get("outboxd_deliveries_dead{endpoint=\"1\"}"), Some(&2.5));
        assert_eq!(m.len(), 2);
    }

    /// Waiting for a sidecar works from a spawned task (the chaos soak's fault director
    /// waits for restarted replicas in one).
    #[test]
    fn waiting_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let mut s = Sidecar::spawn("/bin/true", "postgres://unused", &[], &[]);
        let addr: SocketAddr = ([127, 0, 0, 1], 9).into();
        is_send(&s.wait_started(Duration::ZERO));
        is_send(&s.wait_ready(addr, Duration::ZERO));
    }
}
