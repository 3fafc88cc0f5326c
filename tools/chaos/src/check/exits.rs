//! Did a replica crash, and did every SIGTERM exit 0?
//!
//! A replica that exits by itself after having started is a crash. One that exits 1 before it
//! ever started is `outboxd run` refusing to start while PostgreSQL is away: its documented
//! behaviour, reported apart. Every SIGTERM (the rolling restart and the final stop of all
//! three) must exit 0.

use std::time::Duration;

use super::{Failures, Rule};
use crate::replicas::{ExitCause, ExitRec};

pub struct Exits<'a> {
    /// Exits nobody asked for, after the process had started.
    pub unexpected: Vec<&'a ExitRec>,
    /// Exit 1 before starting (database unavailable at start).
    pub refused: Vec<&'a ExitRec>,
    /// SIGTERM stops that did not exit 0.
    pub term_failures: Vec<&'a ExitRec>,
    /// SIGTERM stops.
    pub terms: usize,
    /// The slowest SIGTERM stop.
    pub max_term: Option<Duration>,
    pub failures: Failures,
}

pub fn exits(exits: &[ExitRec]) -> Exits<'_> {
    let terminated = || exits.iter().filter(|e| e.cause == ExitCause::Terminated);
    let mut x = Exits {
        unexpected: exits
            .iter()
            .filter(|e| e.cause == ExitCause::Unexpected && !e.refused_to_start())
            .collect(),
        refused: exits.iter().filter(|e| e.refused_to_start()).collect(),
        term_failures: terminated().filter(|e| e.code != Some(0)).collect(),
        terms: terminated().count(),
        max_term: terminated().filter_map(|e| e.shutdown_time).max(),
        failures: Failures::default(),
    };
    x.failures.when(
        !x.unexpected.is_empty(),
        Rule::Crashes,
        format!(
            "replica crashes (exits nobody asked for): {}",
            x.unexpected.len()
        ),
    );
    x.failures.when(
        !x.term_failures.is_empty(),
        Rule::TermFailures,
        format!(
            "SIGTERM stops that did not exit 0: {}",
            x.term_failures.len()
        ),
    );
    x
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::exits;
    use crate::check::Rule;
    use crate::replicas::{ExitCause, ExitRec};

    fn exit(cause: ExitCause, code: Option<i32>, had_started: bool, took: u64) -> ExitRec {
        ExitRec {
            replica: "r1".into(),
            generation: 1,
            cause,
            at: Duration::ZERO,
            status: String::new(),
            code,
            shutdown_time: Some(Duration::from_secs(took)),
            had_started,
            log: "r1.1.log".into(),
            log_tail: None,
        }
    }

    #[test]
    fn kills_and_clean_stops_pass_and_a_refusal_to_start_is_no_crash() {
        let recs = [
            exit(ExitCause::Killed, None, true, 0),
            exit(ExitCause::Terminated, Some(0), true, 2),
            exit(ExitCause::Terminated, Some(0), true, 1),
            exit(ExitCause::Unexpected, Some(1), false, 0),
        ];
        let x = exits(&recs);
        assert_eq!((x.terms, x.max_term), (2, Some(Duration::from_secs(2))));
        assert_eq!((x.refused.len(), x.unexpected.len()), (1, 0));
        assert!(x.failures.rules().is_empty());
    }

    #[test]
    fn a_crash_or_a_sigterm_that_does_not_exit_0_fails() {
        let recs = [
            exit(ExitCause::Unexpected, Some(101), true, 0),
            exit(ExitCause::Terminated, None, true, 13),
        ];
        let x = exits(&recs);
        assert_eq!(x.failures.rules(), [Rule::Crashes, Rule::TermFailures]);
    }
}
