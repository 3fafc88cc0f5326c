//! Readiness: `/readyz` answers 200 only when this replica can do its work. It is not ready
//!
//! * while starting: waiting for PostgreSQL to answer, migrating, checking the schema and
//!   the role's privileges (a role that lacks one makes start-up fail, listing them all);
//! * while one of its loops is failing: the router, the claimer or the recorder saw a
//!   database error on its last round and has not succeeded since;
//! * when the router or the claimer has not finished a round for [`Readiness::stale_after`]
//!   (stuck, not merely idle: both come round at least every poll interval).
//!
//! `/readyz` adds one query of its own (the schema version). `/healthz` stays free of
//! database work: a replica waiting for PostgreSQL is alive, only not ready.
//!
//! The recorder's state is also what the claimer reads to stop claiming: outcomes that
//! cannot be written keep their deliveries leased until the lease runs out, and then those
//! deliveries are sent again, so while recording fails no new work is started.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A loop whose health readiness follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Task {
    Router,
    Claimer,
    Recorder,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::Router => "router",
            Task::Claimer => "claimer",
            Task::Recorder => "recorder",
        }
    }

    /// Loops that come round on their own (the recorder waits for outcomes).
    fn periodic(self) -> bool {
        !matches!(self, Task::Recorder)
    }
}

#[derive(Debug)]
struct LoopState {
    last_ok: Instant,
    /// The error of the last round, when it failed.
    failing: Option<String>,
}

#[derive(Debug)]
struct State {
    /// Why start-up is not finished (`None` once running).
    starting: Option<String>,
    loops: BTreeMap<Task, LoopState>,
}

/// What `/readyz` reports, fed by start-up and by the loops.
#[derive(Debug)]
pub(crate) struct Readiness {
    state: Mutex<State>,
    stale_after: Duration,
}

impl Readiness {
    /// Not ready ("starting") until [`started`](Self::started). A periodic loop with no
    /// success for `stale_after` makes the replica not ready.
    pub fn new(stale_after: Duration) -> Readiness {
        Readiness {
            state: Mutex::new(State {
                starting: Some("starting".into()),
                loops: BTreeMap::new(),
            }),
            stale_after,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start-up is still going on, for this reason.
    pub fn starting(&self, why: impl Into<String>) {
        self.state().starting = Some(why.into());
    }

    /// Start-up is done: the loops start now.
    pub fn started(&self, now: Instant) {
        let mut s = self.state();
        s.starting = None;
        for task in [Task::Router, Task::Claimer, Task::Recorder] {
            s.loops.insert(
                task,
                LoopState {
                    last_ok: now,
                    failing: None,
                },
            );
        }
    }

    /// A round of `task` succeeded (or found nothing to do).
    pub fn ok(&self, task: Task, now: Instant) {
        if let Some(l) = self.state().loops.get_mut(&task) {
            l.last_ok = now;
            l.failing = None;
        }
    }

    /// A round of `task` failed.
    pub fn failed(&self, task: Task, error: String) {
        if let Some(l) = self.state().loops.get_mut(&task) {
            l.failing = Some(error);
        }
    }

    /// Whether `task`'s last round failed.
    pub fn is_failing(&self, task: Task) -> bool {
        self.state()
            .loops
            .get(&task)
            .is_some_and(|l| l.failing.is_some())
    }

    /// `Ok` when ready, or why not.
    pub fn verdict(&self, now: Instant) -> Result<(), String> {
        let s = self.state();
        if let Some(why) = &s.starting {
            return Err(why.clone());
        }
        for (task, l) in &s.loops {
            if let Some(e) = &l.failing {
                return Err(format!("{} failing: {e}", task.name()));
            }
            let idle = now.saturating_duration_since(l.last_ok);
            if task.periodic() && idle > self.stale_after {
                return Err(format!(
                    "{} has not finished a round for {}s",
                    task.name(),
                    idle.as_secs()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_start_up_and_while_every_loop_succeeds() {
        let t = Instant::now();
        let r = Readiness::new(Duration::from_secs(30));
        assert_eq!(r.verdict(t), Err("starting".into()));
        r.starting("waiting for PostgreSQL: connection refused");
        assert!(r.verdict(t).unwrap_err().contains("connection refused"));
        r.started(t);
        assert_eq!(r.verdict(t), Ok(()));

        r.failed(Task::Recorder, "ERROR 42501: permission denied".into());
        assert!(r.is_failing(Task::Recorder));
        let why = r.verdict(t).unwrap_err();
        assert!(why.starts_with("recorder failing: ERROR 42501"), "{why}");
        r.ok(Task::Recorder, t);
        assert!(!r.is_failing(Task::Recorder));
        assert_eq!(r.verdict(t), Ok(()));
    }

    #[test]
    fn a_periodic_loop_that_stops_coming_round_makes_it_unready() {
        let t = Instant::now();
        let r = Readiness::new(Duration::from_secs(30));
        r.started(t);
        let later = t + Duration::from_secs(31);
        r.ok(Task::Router, later);
        let why = r.verdict(later).unwrap_err();
        assert_eq!(why, "claimer has not finished a round for 31s");
        // The recorder only works when there are outcomes: idle is fine.
        r.ok(Task::Claimer, later);
        assert_eq!(r.verdict(later), Ok(()));
    }
}
