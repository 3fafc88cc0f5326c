//! The database-wide gauges (backlog, lag, per-endpoint pending and dead). One replica at a
//! time exports them: the holder of the `stats` lease (`outbox.leaders`, see
//! `crate::maintenance::stats`), so `sum()` over replicas never double-counts. Pure.
//!
//! They are never frozen: a value is exported only from a refresh that succeeded within
//! [`StatsState::max_age`]; after a failed refresh (the database is down) or when this
//! replica lost the lease they disappear, while
//! `outboxd_stats_last_success_timestamp_seconds` keeps telling when they were last true
//! (`time() - max(...)` is their staleness).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::endpoints::{LabelPolicy, OTHER};
use super::exposition::{Exposition, Kind};
use super::names;

/// Pending and dead deliveries of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub endpoint_id: i64,
    pub pending: i64,
    pub dead: i64,
}

/// One refresh of the database-wide figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatabaseStats {
    /// Age of the oldest unrouted event (0 when none).
    pub outbox_lag_seconds: f64,
    pub delivering: i64,
    /// Age of the oldest pending (not held) or delivering delivery (0 when none).
    pub oldest_pending_age_seconds: f64,
    /// Endpoints with pending or dead deliveries.
    pub by_endpoint: Vec<Backlog>,
}

/// What this replica knows about the database-wide gauges.
#[derive(Debug)]
pub struct StatsState {
    /// Older snapshots are not exported...
    max_age: Duration,
    /// ... unless the stats service spaced its refreshes out (a slow refresh): then this.
    valid_for: Duration,
    /// Whether the last lease check made this replica the exporter.
    leader: bool,
    snapshot: Option<(DatabaseStats, Instant)>,
    /// Unix time of the last successful refresh by this replica.
    last_success: Option<f64>,
}

impl StatsState {
    pub fn new(max_age: Duration) -> Self {
        StatsState {
            max_age,
            valid_for: max_age,
            leader: false,
            snapshot: None,
            last_success: None,
        }
    }

    /// This replica holds the lease and refreshed the figures, which stay shown for
    /// `valid_for` (two pauses of the stats service; never less than the configured two
    /// intervals).
    pub fn refreshed(
        &mut self,
        stats: DatabaseStats,
        now: Instant,
        unix_now: f64,
        valid_for: Duration,
    ) {
        self.valid_for = valid_for.max(self.max_age);
        self.leader = true;
        self.snapshot = Some((stats, now));
        self.last_success = Some(unix_now);
    }

    /// Another replica holds the lease.
    pub fn not_leader(&mut self) {
        self.leader = false;
        self.snapshot = None;
    }

    /// The refresh failed: whatever we had is no longer known to be true.
    pub fn failed(&mut self) {
        self.snapshot = None;
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Writes the families: always `outboxd_stats_leader`; the last success time once there
    /// was one; the figures only while fresh. `enabled` (sorted) are the endpoints that may
    /// have series of their own.
    pub fn render(&self, out: &mut Exposition, policy: LabelPolicy, enabled: &[i64], now: Instant) {
        out.single(
            names::STATS_LEADER,
            Kind::Gauge,
            "1 on the replica that exports the database-wide gauges (holder of the stats lease), 0 elsewhere.",
            if self.leader { 1.0 } else { 0.0 },
        );
        if let Some(t) = self.last_success {
            out.single(
                names::STATS_LAST_SUCCESS,
                Kind::Gauge,
                "Unix time of this replica's last successful refresh of the database-wide gauges; \
                 time() - max() over replicas is their staleness.",
                t,
            );
        }
        let Some((stats, at)) = &self.snapshot else {
            return;
        };
        if !self.leader || now.duration_since(*at) > self.valid_for {
            return;
        }
        let (pending, dead) = stats
            .by_endpoint
            .iter()
            .fold((0, 0), |(p, d), b| (p + b.pending, d + b.dead));
        out.single(
            names::OUTBOX_LAG,
            Kind::Gauge,
            "Routing lag: age of the oldest unrouted event (0 when everything is routed).",
            stats.outbox_lag_seconds,
        );
        out.single(
            names::DELIVERIES_PENDING,
            Kind::Gauge,
            "Deliveries waiting to be sent (including held ones behind an earlier event of their resource).",
            pending as f64,
        );
        out.single(
            names::DELIVERIES_DELIVERING,
            Kind::Gauge,
            "Deliveries leased by a replica, being sent.",
            stats.delivering as f64,
        );
        out.single(
            names::DELIVERIES_DEAD,
            Kind::Gauge,
            "Dead deliveries (until revived or removed by retention).",
            dead as f64,
        );
        out.single(
            names::OLDEST_PENDING_AGE,
            Kind::Gauge,
            "Age of the oldest unfinished delivery that is due or being sent (0 when none).",
            stats.oldest_pending_age_seconds,
        );
        let rows = per_endpoint(&stats.by_endpoint, policy, enabled);
        out.family(
            names::ENDPOINT_PENDING,
            Kind::Gauge,
            "Pending deliveries by endpoint (`other`: endpoints without series of their own).",
        );
        for (id, b) in &rows {
            out.sample(
                names::ENDPOINT_PENDING,
                &[("endpoint_id", id)],
                b.pending as f64,
            );
        }
        out.family(
            names::ENDPOINT_DEAD,
            Kind::Gauge,
            "Dead deliveries by endpoint (`other`: endpoints without series of their own).",
        );
        for (id, b) in &rows {
            out.sample(names::ENDPOINT_DEAD, &[("endpoint_id", id)], b.dead as f64);
        }
    }
}

/// The per-endpoint rows under `policy`: enabled endpoints with their own label (`all`: every
/// one, 0 when it has nothing; `top:N`: the N with the most pending, then dead, free places
/// filled in id order), the rest summed as `other` (not under `all` unless disabled or deleted
/// endpoints still have deliveries).
fn per_endpoint(rows: &[Backlog], policy: LabelPolicy, enabled: &[i64]) -> Vec<(String, Backlog)> {
    let by_id: HashMap<i64, Backlog> = rows.iter().map(|b| (b.endpoint_id, *b)).collect();
    let get = |id: i64| {
        by_id.get(&id).copied().unwrap_or(Backlog {
            endpoint_id: id,
            ..Backlog::default()
        })
    };
    let mut own: Vec<i64> = match policy {
        LabelPolicy::None => Vec::new(),
        LabelPolicy::All => enabled.to_vec(),
        LabelPolicy::Top(n) => {
            let mut busy: Vec<Backlog> = rows
                .iter()
                .filter(|b| enabled.binary_search(&b.endpoint_id).is_ok())
                .copied()
                .collect();
            busy.sort_by(|a, b| {
                (b.pending, b.dead, a.endpoint_id).cmp(&(a.pending, a.dead, b.endpoint_id))
            });
            let mut own: Vec<i64> = busy.iter().take(n).map(|b| b.endpoint_id).collect();
            for &id in enabled {
                if own.len() >= n {
                    break;
                }
                if !own.contains(&id) {
                    own.push(id);
                }
            }
            own.sort_unstable();
            own
        }
    };
    own.dedup();
    let mut other = Backlog::default();
    for b in rows {
        if own.binary_search(&b.endpoint_id).is_err() {
            other.pending += b.pending;
            other.dead += b.dead;
        }
    }
    let mut out: Vec<(String, Backlog)> = own
        .into_iter()
        .map(|id| (id.to_string(), get(id)))
        .collect();
    if policy != LabelPolicy::All || other != Backlog::default() {
        out.push((OTHER.to_owned(), other));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(endpoint_id: i64, pending: i64, dead: i64) -> Backlog {
        Backlog {
            endpoint_id,
            pending,
            dead,
        }
    }

    fn stats() -> DatabaseStats {
        DatabaseStats {
            outbox_lag_seconds: 1.5,
            delivering: 2,
            oldest_pending_age_seconds: 3.0,
            by_endpoint: vec![b(1, 10, 0), b(2, 0, 4), b(3, 7, 1), b(9, 5, 0)],
        }
    }

    fn page(s: &StatsState, policy: LabelPolicy, now: Instant) -> String {
        let mut out = Exposition::default();
        s.render(&mut out, policy, &[1, 2, 3, 4], now);
        out.into_string()
    }

    #[test]
    fn figures_of_a_spaced_out_refresh_stay_until_the_next_one_is_due() {
        let t = Instant::now();
        let mut s = StatsState::new(Duration::from_secs(20));
        // The refresh took 3 s, so the next comes 60 s later: shown for two pauses.
        s.refreshed(stats(), t, 1_700_000_000.0, Duration::from_secs(120));
        let later = page(&s, LabelPolicy::All, t + Duration::from_secs(90));
        assert!(later.contains("outboxd_deliveries_pending 22"), "{later}");
        assert!(
            !page(&s, LabelPolicy::All, t + Duration::from_secs(121))
                .contains("outboxd_deliveries_pending")
        );
        // A quick refresh again: back to the configured two intervals.
        s.refreshed(stats(), t, 1_700_000_010.0, Duration::from_secs(2));
        assert!(
            !page(&s, LabelPolicy::All, t + Duration::from_secs(21))
                .contains("outboxd_deliveries_pending")
        );
    }

    #[test]
    fn fresh_figures_only_and_the_last_success_always() {
        let t = Instant::now();
        let mut s = StatsState::new(Duration::from_secs(20));
        assert!(page(&s, LabelPolicy::All, t).contains("outboxd_stats_leader 0"));
        s.refreshed(stats(), t, 1_700_000_000.0, Duration::ZERO);
        let p = page(&s, LabelPolicy::All, t);
        for line in [
            "outboxd_stats_leader 1",
            "outboxd_stats_last_success_timestamp_seconds 1700000000",
            "outboxd_outbox_lag_seconds 1.5",
            "outboxd_deliveries_pending 22",
            "outboxd_deliveries_dead 5",
            "outboxd_endpoint_deliveries_pending{endpoint_id=\"4\"} 0",
            // Endpoint 9 is disabled or deleted: its deliveries count, under `other`.
            "outboxd_endpoint_deliveries_pending{endpoint_id=\"other\"} 5",
        ] {
            assert!(p.contains(line), "{line} in\n{p}");
        }
        // Too old: the figures go, the time of the last success stays.
        let late = page(&s, LabelPolicy::All, t + Duration::from_secs(21));
        assert!(!late.contains("outboxd_deliveries_pending"), "{late}");
        assert!(late.contains("outboxd_stats_last_success_timestamp_seconds 1700000000"));
        // A failed refresh drops them at once.
        s.failed();
        assert!(!page(&s, LabelPolicy::All, t).contains("outboxd_outbox_lag_seconds"));
        s.refreshed(stats(), t, 1_700_000_010.0, Duration::ZERO);
        s.not_leader();
        let p = page(&s, LabelPolicy::All, t);
        assert!(
            p.contains("outboxd_stats_leader 0") && !p.contains("outboxd_deliveries_dead"),
            "{p}"
        );
    }

    #[test]
    fn per_endpoint_rows_follow_the_label_policy_and_sum_to_the_totals() {
        let rows = stats().by_endpoint;
        let enabled = [1, 2, 3, 4];
        let top = per_endpoint(&rows, LabelPolicy::Top(2), &enabled);
        let ids: Vec<&str> = top.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["1", "3", "other"]);
        assert_eq!(
            top[2].1,
            Backlog {
                endpoint_id: 0,
                pending: 5,
                dead: 4
            }
        );
        let none = per_endpoint(&rows, LabelPolicy::None, &enabled);
        assert_eq!(none.len(), 1);
        assert_eq!((none[0].1.pending, none[0].1.dead), (22, 5));
        let few = per_endpoint(&[], LabelPolicy::Top(3), &enabled);
        let ids: Vec<&str> = few.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["1", "2", "3", "other"],
            "free places in id order, at 0"
        );
    }
}
