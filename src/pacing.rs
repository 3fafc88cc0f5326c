//! Per-endpoint rate limits (`rate_limit`, requests per second per replica): when the next
//! request to an endpoint may start. Pure: time is passed in.
//!
//! Each request reserves the next free slot (`1 / rate` after the previous one); a worker
//! whose slot lies ahead waits for it. The claim policy uses [`Pacer::next_slot`] to claim
//! only what the rate allows soon, so workers never wait long while their lease runs.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The next free slot of every rate-limited endpoint that sent lately.
#[derive(Debug, Default)]
pub struct Pacer {
    next_slot: HashMap<i64, Instant>,
}

impl Pacer {
    /// Reserves a slot for one request to `endpoint_id` at `rate` requests/s; returns how long
    /// to wait for it (zero when the endpoint is idle).
    pub fn reserve(&mut self, endpoint_id: i64, rate: f64, now: Instant) -> Duration {
        let slot = self.next_slot.entry(endpoint_id).or_insert(now);
        let start = (*slot).max(now);
        *slot = start + Duration::from_secs_f64(1.0 / rate.max(0.001));
        start - now
    }

    /// The endpoints with a reserved future, and when their next slot is free.
    pub fn slots(&self) -> impl Iterator<Item = (i64, Instant)> + '_ {
        self.next_slot.iter().map(|(&ep, &at)| (ep, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_one_over_the_rate() {
        let t = Instant::now();
        let mut p = Pacer::default();
        assert_eq!(p.reserve(1, 10.0, t), Duration::ZERO);
        assert_eq!(p.reserve(1, 10.0, t), Duration::from_millis(100));
        assert_eq!(p.reserve(1, 10.0, t), Duration::from_millis(200));
        // Another endpoint has its own slots.
        assert_eq!(p.reserve(2, 1.0, t), Duration::ZERO);
        // An idle endpoint starts at once again.
        assert_eq!(
            p.reserve(1, 10.0, t + Duration::from_secs(5)),
            Duration::ZERO
        );
    }
}
