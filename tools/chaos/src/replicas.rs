//! The outboxd replicas: child processes of the real `outboxd` binary, each writing its log to
//! `<work dir>/<name>.<generation>.log`. Killed with SIGKILL, stopped with SIGTERM, restarted;
//! every exit is recorded, and an exit nobody asked for is reported with the end of its log.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::clock;

/// Why a replica process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// We sent SIGKILL.
    Killed,
    /// We sent SIGTERM (a graceful stop).
    Terminated,
    /// Nobody asked it to.
    Unexpected,
}

#[derive(Debug, Clone)]
pub struct ExitRec {
    pub replica: String,
    pub generation: u32,
    pub cause: ExitCause,
    pub at: Duration,
    /// `exit status: 0`, `signal: 9 (SIGKILL)`, or `did not exit` (after SIGTERM + timeout).
    pub status: String,
    pub code: Option<i32>,
    /// SIGTERM: time from the signal to the exit.
    pub shutdown_time: Option<Duration>,
    /// The process had logged "outboxd started".
    pub had_started: bool,
    pub log: PathBuf,
    /// For unexpected exits and failed SIGTERMs: the end of its log.
    pub log_tail: Option<String>,
}

impl ExitRec {
    /// Exited 1 before it ever logged "outboxd started": `outboxd run` refusing to start
    /// (e.g. PostgreSQL was restarting), which is its documented behaviour, not a crash.
    pub fn refused_to_start(&self) -> bool {
        self.cause == ExitCause::Unexpected && !self.had_started && self.code == Some(1)
    }
}

struct Slot {
    name: String,
    generation: u32,
    child: Option<Child>,
    log: PathBuf,
    /// When the last process of this slot ended.
    stopped_at: Option<tokio::time::Instant>,
}

pub struct ReplicaSet {
    bin: PathBuf,
    dir: PathBuf,
    env: Vec<(String, String)>,
    slots: Vec<Slot>,
    pub exits: Vec<ExitRec>,
    pub spawned: u32,
}

impl ReplicaSet {
    pub fn new(bin: PathBuf, dir: PathBuf, env: Vec<(String, String)>, n: usize) -> ReplicaSet {
        ReplicaSet {
            bin,
            dir,
            env,
            slots: (1..=n)
                .map(|i| Slot {
                    name: format!("r{i}"),
                    generation: 0,
                    child: None,
                    log: PathBuf::new(),
                    stopped_at: None,
                })
                .collect(),
            exits: Vec::new(),
            spawned: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.slots[i].name
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.slots[i].child.is_some()
    }

    /// Starts slot `i` (which must not be running).
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[i];
        slot.generation += 1;
        slot.log = self
            .dir
            .join(format!("{}.{}.log", slot.name, slot.generation));
        let out = std::fs::File::create(&slot.log)
            .with_context(|| format!("creating {}", slot.log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k == "DATABASE_URL" || k.starts_with("OUTBOXD_") || k == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("run")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OUTBOXD_REPLICA_ID", &slot.name)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory: if this
        // program dies without cleaning up, the kernel kills the replica.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        slot.child = Some(child);
        self.spawned += 1;
        Ok(())
    }

    /// Waits until slot `i` logged "outboxd started"; `false` on timeout or if it exited.
    pub async fn wait_started(&mut self, i: usize, timeout: Duration) -> bool {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if has_started(&self.slots[i].log) {
                return true;
            }
            if self.slots[i].child.is_none() || tokio::time::Instant::now() >= end {
                return false;
            }
            self.poll_exits();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL and reap.
    pub async fn kill9(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(mut child) = slot.child.take() else {
            return;
        };
        let _ = child.start_kill();
        let status = child.wait().await;
        slot.stopped_at = Some(tokio::time::Instant::now());
        let rec = exit_rec(slot, ExitCause::Killed, status.ok(), None, false);
        self.exits.push(rec);
    }

    /// SIGTERM, then wait up to `timeout` for the exit (SIGKILL after that).
    pub async fn term(&mut self, i: usize, timeout: Duration) -> ExitRec {
        let slot = &mut self.slots[i];
        let Some(mut child) = slot.child.take() else {
            let rec = exit_rec(slot, ExitCause::Terminated, None, None, true);
            self.exits.push(rec.clone());
            return rec;
        };
        let sent = clock::now();
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on our own child, which has not been reaped (we hold it).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                None
            }
        };
        let took = clock::now().saturating_sub(sent);
        slot.stopped_at = Some(tokio::time::Instant::now());
        let failed = status.is_none_or(|s| s.code() != Some(0));
        let rec = exit_rec(slot, ExitCause::Terminated, status, Some(took), failed);
        self.exits.push(rec.clone());
        rec
    }

    /// Records replicas that exited on their own and starts again every slot that has been
    /// down for at least `gap` (a crash-looping replica is restarted every `gap`, not in a
    /// tight loop). Returns the names of the replicas started.
    pub fn restart_exited(&mut self, gap: Duration) -> anyhow::Result<Vec<String>> {
        self.poll_exits();
        let mut started = Vec::new();
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.child.is_none() && slot.stopped_at.is_none_or(|t| t.elapsed() >= gap) {
                self.spawn(i)?;
                started.push(self.slots[i].name.clone());
            }
        }
        Ok(started)
    }

    /// Records replicas that exited on their own; returns their slots.
    pub fn poll_exits(&mut self) -> Vec<usize> {
        let mut gone = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let exited = match slot.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(Some(status)),
                Some(Err(_)) => Some(None),
                _ => None,
            };
            if let Some(status) = exited {
                slot.child = None;
                slot.stopped_at = Some(tokio::time::Instant::now());
                let rec = exit_rec(slot, ExitCause::Unexpected, status, None, true);
                self.exits.push(rec);
                gone.push(i);
            }
        }
        gone
    }
}

fn exit_rec(
    slot: &Slot,
    cause: ExitCause,
    status: Option<std::process::ExitStatus>,
    shutdown_time: Option<Duration>,
    want_tail: bool,
) -> ExitRec {
    use std::os::unix::process::ExitStatusExt;
    let text = match status {
        None => "did not exit".to_owned(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(9)) => "signal 9 (SIGKILL)".to_owned(),
            (None, Some(sig)) => format!("signal {sig}"),
            _ => s.to_string(),
        },
    };
    ExitRec {
        replica: slot.name.clone(),
        generation: slot.generation,
        cause,
        at: clock::now(),
        status: text,
        code: status.and_then(|s| s.code()),
        shutdown_time,
        had_started: has_started(&slot.log),
        log: slot.log.clone(),
        log_tail: want_tail.then(|| tail(&slot.log, 15)),
    }
}

fn has_started(log: &Path) -> bool {
    std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).contains("outboxd started"))
        .unwrap_or(false)
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
