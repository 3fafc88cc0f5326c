//! One monotonic clock for the whole run: every time in the logs and the report is a
//! [`Duration`] since [`start`] was called.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Fixes time zero (idempotent).
pub fn start() {
    let _ = EPOCH.get_or_init(Instant::now);
}

/// Time since [`start`].
pub fn now() -> Duration {
    EPOCH.get_or_init(Instant::now).elapsed()
}

/// `instant` on this clock: the time since [`start`] (zero for an instant before it).
pub fn of(instant: Instant) -> Duration {
    instant.saturating_duration_since(*EPOCH.get_or_init(Instant::now))
}

/// The wall-clock time of `d` on this clock (to compare with times the replicas wrote).
pub fn wall(d: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - now().saturating_sub(d)
}

/// `12.3s`
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `+12.3s` for a point in time.
pub fn at(d: Duration) -> String {
    format!("+{:.1}s", d.as_secs_f64())
}
