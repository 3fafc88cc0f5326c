//! The per-endpoint series of one replica, and which endpoints get their own label value
//! (`OUTBOXD_METRICS_ENDPOINT_LABELS`). Pure: time is passed in.
//!
//! Every per-endpoint family carries `endpoint_id`: an endpoint's id, or `other` for the sum
//! of the endpoints without series of their own. [`LabelPolicy`] decides which those are:
//!
//! * `all`: every enabled endpoint (its counters start at 0 as soon as the catalog knows it);
//! * `none`: none, everything is `other`;
//! * `top:N` (default `top:100`): at most N endpoints. A free place goes to an endpoint when it
//!   makes an attempt, and at each scrape to enabled endpoints in id order (so an installation
//!   with at most N endpoints sees them all, from 0). When more than N
//!   compete, every [`RERANK`] the N most relevant win: open circuits first, then the most
//!   failed attempts, then the most attempts since the last ranking; members win ties, so
//!   the set changes only when another endpoint is busier. A newcomer's series start at 0; what
//!   an endpoint did while it had no series of its own stays in `other`, so every counter only
//!   grows.
//!
//! Series of endpoints that were deleted or disabled are dropped at the next scrape.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::exposition::{Exposition, Histogram, Kind};
use super::names;

/// How often `top:N` re-chooses its endpoints.
pub const RERANK: Duration = Duration::from_secs(60);

/// The `endpoint_id` of the endpoints without series of their own.
pub const OTHER: &str = "other";

/// Bucket bounds of `outboxd_attempt_duration_seconds` (the request timeout is 15 s by
/// default).
pub const ATTEMPT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];

/// Bucket bounds of `outboxd_delivery_latency_seconds`: from a fast path (tens of ms) to the
/// default max age of retries (24 h).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 10800.0, 86400.0,
];

/// Which endpoints get their own `endpoint_id` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelPolicy {
    All,
    None,
    Top(usize),
}

impl Default for LabelPolicy {
    fn default() -> Self {
        LabelPolicy::Top(100)
    }
}

impl std::str::FromStr for LabelPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(LabelPolicy::All),
            "none" => Ok(LabelPolicy::None),
            other => other
                .strip_prefix("top:")
                .and_then(|n| n.trim().parse::<usize>().ok())
                .filter(|n| (1..=100_000).contains(n))
                .map(LabelPolicy::Top)
                .ok_or_else(|| {
                    format!("{other:?} is not all, none or top:N (N between 1 and 100000)")
                }),
        }
    }
}

impl std::fmt::Display for LabelPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelPolicy::All => f.write_str("all"),
            LabelPolicy::None => f.write_str("none"),
            LabelPolicy::Top(n) => write!(f, "top:{n}"),
        }
    }
}

/// How a delivery ended with an attempt, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Succeeded,
    Dead,
}

/// What one finished attempt adds to its endpoint's series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub success: bool,
    /// Seconds the HTTP attempt took.
    pub duration: f64,
    /// Set when the attempt completed the delivery.
    pub completion: Option<Completion>,
    /// Seconds from the event's creation to this 2xx (on success only).
    pub latency: Option<f64>,
}

/// The series of one endpoint (or of `other`).
#[derive(Debug, Clone, PartialEq)]
struct Series {
    attempts_ok: u64,
    attempts_failed: u64,
    succeeded: u64,
    dead: u64,
    duration: Histogram,
    latency: Histogram,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            attempts_ok: 0,
            attempts_failed: 0,
            succeeded: 0,
            dead: 0,
            duration: Histogram::new(ATTEMPT_BUCKETS),
            latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl Series {
    fn add(&mut self, a: &Attempt) {
        if a.success {
            self.attempts_ok += 1;
        } else {
            self.attempts_failed += 1;
        }
        self.duration.observe(a.duration);
        match a.completion {
            Some(Completion::Succeeded) => self.succeeded += 1,
            Some(Completion::Dead) => self.dead += 1,
            None => {}
        }
        if let Some(l) = a.latency {
            self.latency.observe(l);
        }
    }
}

/// Attempts since the last ranking (`top:N` only).
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    failures: u64,
    attempts: u64,
}

/// The per-endpoint series of one replica.
#[derive(Debug)]
pub struct EndpointSeries {
    policy: LabelPolicy,
    own: BTreeMap<i64, Series>,
    other: Series,
    activity: HashMap<i64, Activity>,
    ranked_at: Option<Instant>,
}

impl EndpointSeries {
    pub fn new(policy: LabelPolicy) -> Self {
        EndpointSeries {
            policy,
            own: BTreeMap::new(),
            other: Series::default(),
            activity: HashMap::new(),
            ranked_at: None,
        }
    }

    pub fn policy(&self) -> LabelPolicy {
        self.policy
    }

    /// Counts one finished attempt of `endpoint_id`.
    pub fn record(&mut self, endpoint_id: i64, attempt: &Attempt) {
        let series = match self.policy {
            LabelPolicy::All => self.own.entry(endpoint_id).or_default(),
            LabelPolicy::None => &mut self.other,
            LabelPolicy::Top(n) => {
                let a = self.activity.entry(endpoint_id).or_default();
                a.attempts += 1;
                a.failures += u64::from(!attempt.success);
                if self.own.len() < n || self.own.contains_key(&endpoint_id) {
                    self.own.entry(endpoint_id).or_default()
                } else {
                    &mut self.other
                }
            }
        };
        series.add(attempt);
    }

    /// Brings the labelled endpoints up to date before a scrape: drops those not in `enabled`
    /// (deleted or disabled), gives free places to enabled endpoints in id order, and under
    /// `top:N` re-ranks every [`RERANK`]. `enabled` is sorted; `not_closed` holds the
    /// endpoints whose circuit is open or half-open.
    pub fn refresh(&mut self, enabled: &[i64], not_closed: &HashMap<i64, u8>, now: Instant) {
        let is_enabled = |id: &i64| enabled.binary_search(id).is_ok();
        self.own.retain(|id, _| is_enabled(id));
        let limit = match self.policy {
            LabelPolicy::None => return,
            LabelPolicy::All => usize::MAX,
            LabelPolicy::Top(n) => n,
        };
        if let LabelPolicy::Top(n) = self.policy
            && self
                .ranked_at
                .is_none_or(|t| now.duration_since(t) >= RERANK)
        {
            self.rerank(n, enabled, not_closed);
            self.ranked_at = Some(now);
        }
        for &id in enabled {
            if self.own.len() >= limit {
                break;
            }
            self.own.entry(id).or_default();
        }
    }

    fn rerank(&mut self, n: usize, enabled: &[i64], not_closed: &HashMap<i64, u8>) {
        let activity = std::mem::take(&mut self.activity);
        let score = |id: i64| {
            let a = activity.get(&id).copied().unwrap_or_default();
            (not_closed.contains_key(&id), a.failures, a.attempts)
        };
        let mut candidates: Vec<i64> = self
            .own
            .keys()
            .copied()
            .chain(
                activity
                    .keys()
                    .chain(not_closed.keys())
                    .copied()
                    .filter(|id| enabled.binary_search(id).is_ok()),
            )
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        if candidates.len() <= n {
            return;
        }
        // Best first: score, then members, then the lower id.
        candidates.sort_by(|&a, &b| {
            score(b)
                .cmp(&score(a))
                .then(self.own.contains_key(&b).cmp(&self.own.contains_key(&a)))
                .then(a.cmp(&b))
        });
        candidates.truncate(n);
        candidates.sort_unstable();
        self.own
            .retain(|id, _| candidates.binary_search(id).is_ok());
        for id in candidates {
            self.own.entry(id).or_default();
        }
    }

    /// The endpoints with series of their own, in id order.
    #[cfg(test)]
    pub fn labelled(&self) -> impl Iterator<Item = i64> + '_ {
        self.own.keys().copied()
    }

    /// Writes the per-endpoint families (call [`refresh`](Self::refresh) first).
    pub fn render(&self, out: &mut Exposition, not_closed: &HashMap<i64, u8>) {
        let ids: Vec<String> = self.own.keys().map(i64::to_string).collect();
        let all: Vec<(&str, &Series)> = ids
            .iter()
            .map(String::as_str)
            .zip(self.own.values())
            .chain((self.policy != LabelPolicy::All).then_some((OTHER, &self.other)))
            .collect();

        // The two counter families: (name, help, label, the series' two values).
        type Pair = fn(&Series) -> [(&'static str, u64); 2];
        let counters: [(&str, &str, &str, Pair); 2] = [
            (
                names::ATTEMPTS,
                "HTTP attempts by endpoint and result (success: a 2xx; failure: anything else, \
                 kinds in outboxd_attempt_errors_total).",
                "result",
                |s| [("success", s.attempts_ok), ("failure", s.attempts_failed)],
            ),
            (
                names::DELIVERIES_COMPLETED,
                "Deliveries this replica completed, by endpoint and final state (succeeded or dead).",
                "state",
                |s| [("succeeded", s.succeeded), ("dead", s.dead)],
            ),
        ];
        for (name, help, label, pair) in counters {
            out.family(name, Kind::Counter, help);
            for (id, s) in &all {
                for (value, n) in pair(s) {
                    out.sample(name, &[("endpoint_id", id), (label, value)], n as f64);
                }
            }
        }
        out.family(
            names::ATTEMPT_DURATION,
            Kind::Histogram,
            "Duration of one HTTP attempt, by endpoint.",
        );
        for (id, s) in all.iter().filter(|(_, s)| s.duration.count() > 0) {
            out.histogram(names::ATTEMPT_DURATION, &[("endpoint_id", id)], &s.duration);
        }
        out.family(
            names::DELIVERY_LATENCY,
            Kind::Histogram,
            "End-to-end latency: from the event's created_at to the 2xx that completed its \
             delivery, by endpoint.",
        );
        for (id, s) in all.iter().filter(|(_, s)| s.latency.count() > 0) {
            out.histogram(names::DELIVERY_LATENCY, &[("endpoint_id", id)], &s.latency);
        }
        out.family(
            names::ENDPOINT_CIRCUIT_STATE,
            Kind::Gauge,
            "This replica's circuit breaker of the endpoint: 0 closed, 1 open, 2 half-open.",
        );
        for (id, key) in ids.iter().zip(self.own.keys()) {
            let state = not_closed.get(key).copied().unwrap_or(0);
            out.sample(
                names::ENDPOINT_CIRCUIT_STATE,
                &[("endpoint_id", id)],
                f64::from(state),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Attempt {
        Attempt {
            success: true,
            duration: 0.02,
            completion: Some(Completion::Succeeded),
            latency: Some(0.3),
        }
    }

    fn failed() -> Attempt {
        Attempt {
            success: false,
            duration: 1.0,
            completion: None,
            latency: None,
        }
    }

    fn text(s: &EndpointSeries, not_closed: &HashMap<i64, u8>) -> String {
        let mut out = Exposition::default();
        s.render(&mut out, not_closed);
        out.into_string()
    }

    #[test]
    fn policies_parse_and_print() {
        for (s, p) in [
            ("all", LabelPolicy::All),
            ("none", LabelPolicy::None),
            ("top:5", LabelPolicy::Top(5)),
        ] {
            assert_eq!(s.parse::<LabelPolicy>(), Ok(p));
            assert_eq!(p.to_string(), s);
        }
        for bad in ["some", "top:0", "top:", "top:x", "top:100001"] {
            assert!(bad.parse::<LabelPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn known_endpoints_start_at_zero_and_deleted_ones_disappear() {
        let mut s = EndpointSeries::new(LabelPolicy::All);
        let t = Instant::now();
        s.refresh(&[1, 2], &HashMap::new(), t);
        let page = text(&s, &HashMap::new());
        for id in ["1", "2"] {
            for line in [
                format!("outboxd_attempts_total{{endpoint_id=\"{id}\",result=\"failure\"}} 0"),
                format!(
                    "outboxd_deliveries_completed_total{{endpoint_id=\"{id}\",state=\"dead\"}} 0"
                ),
                format!("outboxd_endpoint_circuit_state{{endpoint_id=\"{id}\"}} 0"),
            ] {
                assert!(page.contains(&line), "{line} in\n{page}");
            }
        }
        assert!(!page.contains("other"), "{page}");
        s.record(2, &ok());
        s.record(2, &failed());
        let open = HashMap::from([(2, 1u8)]);
        s.refresh(&[2], &open, t);
        let page = text(&s, &open);
        assert!(!page.contains("endpoint_id=\"1\""), "{page}");
        assert!(page.contains("outboxd_attempts_total{endpoint_id=\"2\",result=\"success\"} 1"));
        assert!(page.contains("outboxd_endpoint_circuit_state{endpoint_id=\"2\"} 1"));
        assert!(
            page.contains(
                "outboxd_delivery_latency_seconds_bucket{endpoint_id=\"2\",le=\"0.5\"} 1"
            )
        );
        assert!(page.contains("outboxd_attempt_duration_seconds_count{endpoint_id=\"2\"} 2"));
    }

    #[test]
    fn none_puts_everything_in_other() {
        let mut s = EndpointSeries::new(LabelPolicy::None);
        s.refresh(&[1, 2, 3], &HashMap::new(), Instant::now());
        s.record(1, &ok());
        s.record(3, &failed());
        let page = text(&s, &HashMap::new());
        assert!(
            page.contains("outboxd_attempts_total{endpoint_id=\"other\",result=\"success\"} 1")
        );
        assert!(
            page.contains("outboxd_attempts_total{endpoint_id=\"other\",result=\"failure\"} 1")
        );
        assert!(!page.contains("endpoint_id=\"1\""), "{page}");
        assert!(!page.contains("outboxd_endpoint_circuit_state{"), "{page}");
    }

    #[test]
    fn top_n_keeps_the_busiest_failing_endpoints_and_counters_never_go_down() {
        let mut s = EndpointSeries::new(LabelPolicy::Top(2));
        let t0 = Instant::now();
        let enabled = [1, 2, 3, 4];
        let none = HashMap::new();
        s.refresh(&enabled, &none, t0);
        assert_eq!(
            s.labelled().collect::<Vec<_>>(),
            [1, 2],
            "free places in id order"
        );
        // Endpoint 4 fails a lot, 3 a little, 1 succeeds, 2 is idle.
        for _ in 0..5 {
            s.record(4, &failed());
        }
        s.record(3, &failed());
        s.record(1, &ok());
        let before = text(&s, &none);
        assert!(
            before.contains("outboxd_attempts_total{endpoint_id=\"other\",result=\"failure\"} 6")
        );
        // Within the ranking period nothing moves.
        s.refresh(&enabled, &none, t0 + Duration::from_secs(1));
        assert_eq!(s.labelled().collect::<Vec<_>>(), [1, 2]);
        s.refresh(&enabled, &none, t0 + RERANK);
        assert_eq!(s.labelled().collect::<Vec<_>>(), [3, 4]);
        let after = text(&s, &none);
        // What 3 and 4 did before they had their own series stays in `other`.
        assert!(
            after.contains("outboxd_attempts_total{endpoint_id=\"other\",result=\"failure\"} 6")
        );
        assert!(after.contains("outboxd_attempts_total{endpoint_id=\"4\",result=\"failure\"} 0"));
        // An open circuit outranks attempts; members win ties.
        let open = HashMap::from([(2, 1u8)]);
        s.record(3, &ok());
        s.refresh(&enabled, &open, t0 + RERANK * 2);
        assert_eq!(s.labelled().collect::<Vec<_>>(), [2, 3]);
        s.refresh(&enabled, &HashMap::new(), t0 + RERANK * 3);
        assert_eq!(
            s.labelled().collect::<Vec<_>>(),
            [2, 3],
            "no activity: members stay"
        );
    }
}
