//! Circuit breaker per endpoint (SPEC §4 "Isolation"), kept by each replica in memory.
//!
//! ```text
//!  Closed ──(failures ≥ threshold in a row)──► Open ──(cooldown elapsed)──► HalfOpen
//!    ▲                                          ▲                              │
//!    └──────────────── probe succeeds ──────────┼──────────────────────────────┤
//!                                               └──── probe fails (cooldown ×2, ≤ max) ┘
//! ```
//! While open, the claimer takes no deliveries for the endpoint (they stay pending in the
//! database, each on its own retry schedule); half-open lets exactly one request through.
//! Pure: time is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The breaker's state as exported in `outboxd_endpoint_circuit_state` (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
    consecutive_failures: u32,
    cooldown: Duration,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            base_cooldown: cooldown,
            max_cooldown: Duration::from_secs(600).max(cooldown),
            consecutive_failures: 0,
            cooldown,
            open_until: None,
        }
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        match self.open_until {
            None => CircuitState::Closed,
            Some(t) if now < t => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Records a finished attempt; returns the state after it.
    pub fn record(&mut self, success: bool, now: Instant) -> CircuitState {
        if success {
            self.consecutive_failures = 0;
            self.cooldown = self.base_cooldown;
            self.open_until = None;
            return CircuitState::Closed;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state(now) {
            CircuitState::HalfOpen => {
                // The probe failed: back off harder.
                self.cooldown = (self.cooldown * 2).min(self.max_cooldown);
                self.open_until = Some(now + self.cooldown);
            }
            CircuitState::Closed if self.consecutive_failures >= self.threshold => {
                self.open_until = Some(now + self.cooldown);
            }
            _ => {}
        }
        self.state(now)
    }
}

/// The breakers of one replica, one per endpoint that failed lately (an endpoint without
/// one is closed). All breakers share the configured threshold and cooldown.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    by_endpoint: HashMap<i64, Breaker>,
}

/// A breaker's change of state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub before: CircuitState,
    pub after: CircuitState,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breakers {
            threshold,
            cooldown,
            by_endpoint: HashMap::new(),
        }
    }

    /// Records a finished attempt of `endpoint_id`. A closed breaker after a success is
    /// forgotten, so the map holds only endpoints that failed lately.
    pub fn record(&mut self, endpoint_id: i64, success: bool, now: Instant) -> Transition {
        let (threshold, cooldown) = (self.threshold, self.cooldown);
        let breaker = self
            .by_endpoint
            .entry(endpoint_id)
            .or_insert_with(|| Breaker::new(threshold, cooldown));
        let before = breaker.state(now);
        let after = breaker.record(success, now);
        if after == CircuitState::Closed && success {
            self.by_endpoint.remove(&endpoint_id);
        }
        Transition { before, after }
    }

    /// Endpoints whose breaker is not closed, with their state.
    pub fn not_closed(&self, now: Instant) -> impl Iterator<Item = (i64, CircuitState)> + '_ {
        self.by_endpoint
            .iter()
            .map(move |(&ep, b)| (ep, b.state(now)))
            .filter(|&(_, s)| s != CircuitState::Closed)
    }

    /// Forgets the breakers of endpoints `keep` refuses (deleted or disabled ones).
    pub fn retain(&mut self, keep: impl Fn(i64) -> bool) {
        self.by_endpoint.retain(|&ep, _| keep(ep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_cooldown() {
        let t = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        assert_eq!(b.record(false, t), CircuitState::Closed);
        assert_eq!(b.record(false, t), CircuitState::Closed);
        assert_eq!(b.record(false, t), CircuitState::Open);
        assert_eq!(b.state(t + Duration::from_secs(9)), CircuitState::Open);
        assert_eq!(b.state(t + Duration::from_secs(10)), CircuitState::HalfOpen);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(10));
        b.record(false, t);
        b.record(true, t);
        assert_eq!(b.record(false, t), CircuitState::Closed);
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_a_cap() {
        let t = Instant::now();
        let mut b = Breaker::new(1, Duration::from_secs(300));
        b.record(false, t);
        let probe = t + Duration::from_secs(300);
        assert_eq!(b.state(probe), CircuitState::HalfOpen);
        b.record(false, probe);
        assert_eq!(
            b.state(probe + Duration::from_secs(599)),
            CircuitState::Open
        );
        assert_eq!(
            b.state(probe + Duration::from_secs(600)),
            CircuitState::HalfOpen
        );
        b.record(false, probe + Duration::from_secs(600));
        // capped at 10 minutes
        assert_eq!(
            b.state(probe + Duration::from_secs(1200)),
            CircuitState::HalfOpen
        );
        assert_eq!(b.record(true, probe), CircuitState::Closed);
    }

    #[test]
    fn breakers_keep_only_endpoints_that_failed_lately() {
        let t = Instant::now();
        let mut b = Breakers::new(2, Duration::from_secs(10));
        let first = b.record(7, false, t);
        assert_eq!(
            (first.before, first.after),
            (CircuitState::Closed, CircuitState::Closed)
        );
        let opened = b.record(7, false, t);
        assert_eq!(opened.after, CircuitState::Open);
        assert_eq!(
            b.not_closed(t).collect::<Vec<_>>(),
            [(7, CircuitState::Open)]
        );
        b.record(8, true, t);
        let probe = t + Duration::from_secs(10);
        assert_eq!(
            b.not_closed(probe).collect::<Vec<_>>(),
            [(7, CircuitState::HalfOpen)]
        );
        assert_eq!(b.record(7, true, probe).after, CircuitState::Closed);
        assert_eq!(b.not_closed(probe).count(), 0);
    }
}
