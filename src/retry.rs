//! Retry policy (SPEC §4 "Retries"): what happens after an attempt.
//!
//! Pure: given the [`Outcome`], how many attempts were made and how old the event is, decide
//! whether the delivery succeeded, is retried (and when) or is dead. The delay after the n-th
//! failure is `schedule[n-1]` (the last entry repeats) with ±`jitter` randomness, replaced by a
//! capped `Retry-After` when a 429/503 sent one. A delivery whose event is older than `max_age`
//! is dead; the last retry is moved up to the deadline, so the final attempt happens at
//! `max_age` rather than one full interval earlier.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::delivery::Outcome;

/// The default delays (`OUTBOXD_RETRY_SCHEDULE`): SPEC §4's "roughly 5 s, 30 s, 2 min, 10 min,
/// 30 min, 1 h, then every 2 h".
pub(crate) const DEFAULT_SCHEDULE: &str = "5s,30s,2m,10m,30m,1h,2h";
/// The default `OUTBOXD_RETRY_JITTER`: ±20 %.
pub(crate) const DEFAULT_JITTER: f64 = 0.2;
/// The default `OUTBOXD_MAX_AGE`: a day.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The default `OUTBOXD_RETRY_AFTER_MAX`: an hour.
pub(crate) const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// An endpoint's own retry settings (`outbox.endpoints.retry_schedule`, `max_age`): each one,
/// when set, replaces the global one for that endpoint's deliveries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryOverride {
    pub schedule: Option<Vec<Duration>>,
    pub max_age: Option<Duration>,
}

/// Configured retry behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the 1st, 2nd, … failure; the last one repeats.
    pub schedule: Vec<Duration>,
    /// Fraction of randomness added to each delay: 0.2 = uniform in [0.8, 1.2] × delay.
    pub jitter: f64,
    /// After this age of the event, a failing delivery is dead.
    pub max_age: Duration,
    /// Upper bound for a receiver's `Retry-After`.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            schedule: parse_schedule(DEFAULT_SCHEDULE).unwrap_or_default(),
            jitter: DEFAULT_JITTER,
            max_age: DEFAULT_MAX_AGE,
            retry_after_cap: DEFAULT_RETRY_AFTER_CAP,
        }
    }
}

/// What the delivery becomes after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Succeeded,
    Retry { at: DateTime<Utc> },
    Dead { reason: DeadReason },
}

/// Why a delivery stopped being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The event is older than `max_age`.
    MaxAge,
    /// The failure cannot be fixed by retrying (see [`crate::delivery::ErrorKind::is_permanent`]).
    Permanent,
}

/// Errors in a retry schedule string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("retry schedule is empty")]
    Empty,
    #[error("retry schedule entry {0:?} is not a duration like 5s, 2m or 1h")]
    BadEntry(String),
    #[error("retry schedule entry {0:?} must be greater than zero")]
    Zero(String),
}

/// Parses `5s,30s,2m,10m,30m,1h,2h`.
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, ScheduleError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d =
            humantime::parse_duration(part).map_err(|_| ScheduleError::BadEntry(part.into()))?;
        if d.is_zero() {
            return Err(ScheduleError::Zero(part.into()));
        }
        out.push(d);
    }
    if out.is_empty() {
        return Err(ScheduleError::Empty);
    }
    Ok(out)
}

/// The un-jittered delay after `failures` failures (1-based) of `schedule`.
fn delay_of(schedule: &[Duration], failures: u32) -> Duration {
    let idx = (failures.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule.get(idx).copied().unwrap_or(Duration::from_secs(5))
}

impl RetryPolicy {
    /// The un-jittered delay after `failures` failures (1-based).
    pub fn base_delay(&self, failures: u32) -> Duration {
        delay_of(&self.schedule, failures)
    }

    /// Decides the next state. `attempts` counts this attempt too; `unit` is a uniform random
    /// number in [0, 1) (passed in so the function stays pure and testable).
    pub fn decide(
        &self,
        outcome: &Outcome,
        attempts: u32,
        event_created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Decision {
        self.decide_for(
            &RetryOverride::default(),
            outcome,
            attempts,
            event_created_at,
            now,
            unit,
        )
    }

    /// [`decide`](RetryPolicy::decide) for an endpoint with its own schedule and/or max age;
    /// jitter and the `Retry-After` cap stay global.
    pub fn decide_for(
        &self,
        endpoint: &RetryOverride,
        outcome: &Outcome,
        attempts: u32,
        event_created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        unit: f64,
    ) -> Decision {
        let schedule = endpoint.schedule.as_deref().unwrap_or(&self.schedule);
        let max_age = endpoint.max_age.unwrap_or(self.max_age);
        let (kind, retry_after) = match outcome {
            Outcome::Delivered { .. } => return Decision::Succeeded,
            Outcome::Failed {
                kind, retry_after, ..
            } => (*kind, *retry_after),
        };
        if kind.is_permanent() {
            return Decision::Dead {
                reason: DeadReason::Permanent,
            };
        }
        let deadline = event_created_at + chrono_dur(max_age);
        if now >= deadline {
            return Decision::Dead {
                reason: DeadReason::MaxAge,
            };
        }
        let delay = match retry_after {
            Some(ra) => ra.min(self.retry_after_cap),
            None => {
                let base = delay_of(schedule, attempts).as_secs_f64();
                let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
                Duration::from_secs_f64((base * factor).max(0.0))
            }
        };
        let at = (now + chrono_dur(delay)).min(deadline);
        Decision::Retry { at }
    }
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::ErrorKind;

    fn failed(kind: ErrorKind, retry_after: Option<Duration>) -> Outcome {
        Outcome::Failed {
            kind,
            status: Some(500),
            message: String::new(),
            excerpt: None,
            retry_after,
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn retry_delay(d: Decision, now: DateTime<Utc>) -> Duration {
        match d {
            Decision::Retry { at } => (at - now).to_std().unwrap(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn default_schedule_is_the_documented_one() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=9).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 30, 120, 600, 1800, 3600, 7200, 7200, 7200]);
    }

    #[test]
    fn success_is_final() {
        let p = RetryPolicy::default();
        let ok = Outcome::Delivered {
            status: 204,
            excerpt: String::new(),
        };
        assert_eq!(p.decide(&ok, 3, t0(), t0(), 0.5), Decision::Succeeded);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let f = failed(ErrorKind::Status, None);
        let lo = retry_delay(p.decide(&f, 2, t0(), t0(), 0.0), t0());
        let mid = retry_delay(p.decide(&f, 2, t0(), t0(), 0.5), t0());
        let hi = retry_delay(p.decide(&f, 2, t0(), t0(), 0.999_999), t0());
        assert_eq!(lo, Duration::from_secs(24));
        assert_eq!(mid, Duration::from_secs(30));
        assert!(hi > Duration::from_secs(35) && hi <= Duration::from_secs(36));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        let f = failed(ErrorKind::Status, Some(Duration::from_secs(7)));
        assert_eq!(
            retry_delay(p.decide(&f, 1, t0(), t0(), 0.9), t0()),
            Duration::from_secs(7)
        );
        let f = failed(ErrorKind::Status, Some(Duration::from_secs(86_400 * 3)));
        assert_eq!(
            retry_delay(p.decide(&f, 1, t0(), t0(), 0.9), t0()),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn old_events_are_dead_and_the_last_retry_lands_on_the_deadline() {
        let p = RetryPolicy::default();
        let f = failed(ErrorKind::Timeout, None);
        let created = t0();
        let late = created + chrono::Duration::hours(24);
        assert_eq!(
            p.decide(&f, 20, created, late, 0.5),
            Decision::Dead {
                reason: DeadReason::MaxAge
            }
        );
        let almost = created + chrono::Duration::hours(23);
        assert_eq!(
            p.decide(&f, 20, created, almost, 0.5),
            Decision::Retry {
                at: created + chrono::Duration::hours(24)
            }
        );
    }

    #[test]
    fn permanent_errors_are_dead_at_once() {
        let p = RetryPolicy::default();
        let f = failed(ErrorKind::InvalidEvent, None);
        assert_eq!(
            p.decide(&f, 1, t0(), t0(), 0.5),
            Decision::Dead {
                reason: DeadReason::Permanent
            }
        );
    }

    #[test]
    fn an_endpoints_own_schedule_and_max_age_replace_the_global_ones() {
        let p = RetryPolicy::default();
        let f = failed(ErrorKind::Status, None);
        let own = RetryOverride {
            schedule: Some(parse_schedule("1m,10m").unwrap()),
            max_age: Some(Duration::from_secs(2 * 3600)),
        };
        let delays: Vec<Duration> = (1..=3)
            .map(|n| retry_delay(p.decide_for(&own, &f, n, t0(), t0(), 0.5), t0()))
            .collect();
        assert_eq!(
            delays,
            [60, 600, 600].map(Duration::from_secs),
            "the last entry repeats"
        );
        // Dead after its own max age (the global one is a day).
        let late = t0() + chrono::Duration::hours(2);
        assert_eq!(
            p.decide_for(&own, &f, 5, t0(), late, 0.5),
            Decision::Dead {
                reason: DeadReason::MaxAge
            }
        );
        // Only the schedule: the global max age still applies; jitter stays global.
        let schedule_only = RetryOverride {
            schedule: own.schedule.clone(),
            max_age: None,
        };
        assert_eq!(
            retry_delay(p.decide_for(&schedule_only, &f, 1, t0(), late, 0.0), late),
            Duration::from_secs(48)
        );
        // Retry-After is still honoured and capped globally.
        let ra = failed(ErrorKind::Status, Some(Duration::from_secs(7)));
        assert_eq!(
            retry_delay(p.decide_for(&own, &ra, 1, t0(), t0(), 0.5), t0()),
            Duration::from_secs(7)
        );
        // No override: the same as decide.
        assert_eq!(
            p.decide_for(&RetryOverride::default(), &f, 2, t0(), t0(), 0.3),
            p.decide(&f, 2, t0(), t0(), 0.3)
        );
    }

    #[test]
    fn parses_schedules_and_rejects_nonsense() {
        assert_eq!(
            parse_schedule("100ms, 1s,2m").unwrap(),
            vec![
                Duration::from_millis(100),
                Duration::from_secs(1),
                Duration::from_secs(120)
            ]
        );
        assert_eq!(parse_schedule(""), Err(ScheduleError::Empty));
        assert_eq!(
            parse_schedule("5s,soon"),
            Err(ScheduleError::BadEntry("soon".into()))
        );
        assert_eq!(parse_schedule("0s"), Err(ScheduleError::Zero("0s".into())));
    }
}

/// Property tests: retry schedules. Each property runs a moderate number of cases; `PROPTEST_CASES`
/// runs more (e.g. `PROPTEST_CASES=100000` for a soak). A failure prints the shrunk input:
/// pin it as a plain test.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::cases;

    fn duration_entry() -> impl Strategy<Value = (String, Duration)> {
        (1u64..100_000, 0usize..4).prop_map(|(n, unit)| match unit {
            0 => (format!("{n}ms"), Duration::from_millis(n)),
            1 => (format!("{n}s"), Duration::from_secs(n)),
            2 => (format!("{n}m"), Duration::from_secs(n * 60)),
            _ => (format!("{n}h"), Duration::from_secs(n * 3600)),
        })
    }

    proptest! {
        #![proptest_config(cases(512))]

        #[test]
        fn parse_schedule_never_panics_and_accepts_only_positive_non_empty_lists(
            s in prop_oneof![
                any::<String>(),
                "([0-9]{1,25}(ns|us|ms|s|m|h|d|x)? ?,? ?){0,5}",
            ]
        ) {
            if let Ok(schedule) = parse_schedule(&s) {
                prop_assert!(!schedule.is_empty(), "{:?}", s);
                prop_assert!(schedule.iter().all(|d| !d.is_zero()), "{:?}", s);
            }
        }

        #[test]
        fn parse_schedule_reads_back_what_was_written(
            entries in proptest::collection::vec(duration_entry(), 1..8),
            sep in prop_oneof![Just(","), Just(", "), Just(" ,"), Just(",,")],
        ) {
            let text = entries.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(sep);
            let expected: Vec<Duration> = entries.iter().map(|(_, d)| *d).collect();
            prop_assert_eq!(parse_schedule(&text).ok(), Some(expected), "{:?}", text);
        }

        #[test]
        fn a_zero_entry_anywhere_is_refused(
            entries in proptest::collection::vec(duration_entry(), 0..4),
            zero in prop_oneof![Just("0s"), Just("0ms"), Just("0h")],
            at in 0usize..5,
        ) {
            let mut parts: Vec<String> = entries.into_iter().map(|(t, _)| t).collect();
            parts.insert(at.min(parts.len()), zero.to_owned());
            prop_assert!(parse_schedule(&parts.join(",")).is_err());
        }
    }
}
