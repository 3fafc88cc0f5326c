//! The outboxd replicas: child processes of the real `outboxd` binary ([`testkit::Sidecar`]),
//! each writing its log to `<work dir>/<name>.<generation>.log`. Killed with SIGKILL, stopped
//! with SIGTERM, restarted; every exit is recorded, and an exit nobody asked for is reported
//! with the end of its log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use testkit::Sidecar;

use crate::clock;

/// What outboxd logs once it serves (the kit's [`Sidecar::wait_started`] waits for it too).
const STARTED: &str = "outboxd started";

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
    /// This slot's own environment, on top of the set's (e.g. its fixed inbound port).
    env: Vec<(String, String)>,
    /// The latest process, kept after it ended so that its log can still be read.
    process: Option<Sidecar>,
    /// The latest process runs: its end has not been recorded yet.
    running: bool,
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
                    env: Vec::new(),
                    process: None,
                    running: false,
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

    /// Every process started from now on runs `bin` (the live upgrade's new binary).
    pub fn set_binary(&mut self, bin: PathBuf) {
        self.bin = bin;
    }

    /// Where slot `i`'s latest process serves `/readyz`, once it was seen started.
    pub fn listen_addr(&self, i: usize) -> Option<SocketAddr> {
        self.slots[i].process.as_ref()?.listen_addr()
    }

    /// Sets `key=value` for every process slot `i` starts from now on.
    pub fn set_env(&mut self, i: usize, key: &str, value: &str) {
        let env = &mut self.slots[i].env;
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.slots[i].running
    }

    /// Starts slot `i` (which must not be running). The process dies with the thread that
    /// spawns it (`kill_with_parent`): call this on a runtime thread, never in
    /// `spawn_blocking`.
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &mut self.slots[i];
        slot.generation += 1;
        let log = self
            .dir
            .join(format!("{}.{}.log", slot.name, slot.generation));
        let process = Sidecar::command(&self.bin)
            .arg("run")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(slot.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OUTBOXD_REPLICA_ID", &slot.name)
            .log_to(log)
            .kill_with_parent()
            .spawn()
            .with_context(|| format!("starting replica {}", slot.name))?;
        slot.process = Some(process);
        slot.running = true;
        self.spawned += 1;
        Ok(())
    }

    /// Waits until slot `i`'s latest process logged "outboxd started"; an error with the end
    /// of its log if it exited first (the exit is recorded) or `timeout` passed.
    pub async fn wait_started(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let Some(process) = slot.process.as_mut() else {
            return Err(format!("replica {} was never started", slot.name));
        };
        let started = process.wait_started(timeout).await.map(drop);
        if started.is_err() {
            self.poll_exit(i);
        }
        started
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let Some(process) = slot.process.as_mut() else {
            return;
        };
        if !slot.running {
            return;
        }
        process.kill9();
        let status = process.exit_status();
        let rec = slot.ended(ExitCause::Killed, status, None, false);
        self.exits.push(rec);
    }

    /// SIGTERM, then wait up to `timeout` for the exit (SIGKILL after that).
    pub async fn term(&mut self, i: usize, timeout: Duration) -> ExitRec {
        let slot = &mut self.slots[i];
        let rec = match slot.process.as_mut() {
            Some(process) if slot.running => {
                let sent = clock::now();
                let status = process.terminate(timeout).await;
                let took = clock::now().saturating_sub(sent);
                let failed = status.is_none_or(|s| s.code() != Some(0));
                slot.ended(ExitCause::Terminated, status, Some(took), failed)
            }
            // Already gone: a SIGTERM that found nothing to stop does not count as a clean one.
            _ => slot.record(ExitCause::Terminated, None, None, true),
        };
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
            if !slot.running && slot.stopped_at.is_none_or(|t| t.elapsed() >= gap) {
                self.spawn(i)?;
                started.push(self.slots[i].name.clone());
            }
        }
        Ok(started)
    }

    /// Records replicas that exited on their own.
    pub fn poll_exits(&mut self) {
        for i in 0..self.slots.len() {
            self.poll_exit(i);
        }
    }

    /// Records slot `i`'s process if it exited on its own.
    fn poll_exit(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.running {
            return;
        }
        let Some(status) = slot.process.as_mut().and_then(Sidecar::exit_status) else {
            return;
        };
        let rec = slot.ended(ExitCause::Unexpected, Some(status), None, true);
        self.exits.push(rec);
    }
}

impl Slot {
    /// The latest process has ended: marks the slot stopped and records how.
    fn ended(
        &mut self,
        cause: ExitCause,
        status: Option<ExitStatus>,
        shutdown_time: Option<Duration>,
        want_tail: bool,
    ) -> ExitRec {
        self.running = false;
        self.stopped_at = Some(tokio::time::Instant::now());
        self.record(cause, status, shutdown_time, want_tail)
    }

    /// The exit record of the latest process.
    fn record(
        &self,
        cause: ExitCause,
        status: Option<ExitStatus>,
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
        let process = self.process.as_ref();
        ExitRec {
            replica: self.name.clone(),
            generation: self.generation,
            cause,
            at: clock::now(),
            status: text,
            code: status.and_then(|s| s.code()),
            shutdown_time,
            had_started: process.is_some_and(|p| p.log().contains(STARTED)),
            log: process.map_or_else(PathBuf::new, |p| p.log_path().to_owned()),
            log_tail: want_tail.then(|| process.map(|p| p.log_tail(15)).unwrap_or_default()),
        }
    }
}
