//! The one throwaway cluster all test processes of a test run share (blocking code; it runs in
//! `spawn_blocking`). See [`super`] for the state file, the lock and the clean-up rules.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use outboxd::embedded_pg::{self, EmbeddedPostgres};

use crate::process::process_start;

const STATE_DIR: &str = "/tmp/outboxd-test-pg";

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
pub(super) fn shared_cluster() -> Result<String, String> {
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
