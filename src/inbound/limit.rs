//! A source's optional acceptance rate limit (`outbox.sources.rate_limit`, requests per
//! second per replica): a token bucket holding one second's worth (at least one request), so
//! short bursts pass and a sustained excess is answered 429 with `Retry-After`. Pure: time is
//! passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of the rate-limited sources that received requests.
#[derive(Debug, Default)]
pub(crate) struct Limiter {
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    /// Takes one request's token for `source` at `rate` requests/s; when there is none, how
    /// long until there is.
    pub(crate) fn take(&mut self, source: &str, rate: f64, now: Instant) -> Result<(), Duration> {
        let rate = rate.max(0.001);
        let capacity = rate.max(1.0);
        let bucket = match self.buckets.get_mut(source) {
            Some(b) => b,
            None => self.buckets.entry(source.to_owned()).or_insert(Bucket {
                tokens: capacity,
                at: now,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Forgets sources that are gone or no longer limited.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.buckets.retain(|name, _| keep(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_seconds_worth_passes_then_the_rate_holds() {
        let t = Instant::now();
        let mut l = Limiter::default();
        for _ in 0..10 {
            assert_eq!(l.take("s", 10.0, t), Ok(()));
        }
        let wait = l.take("s", 10.0, t).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // 100 ms later there is one more token, and only one.
        let t1 = t + Duration::from_millis(100);
        assert_eq!(l.take("s", 10.0, t1), Ok(()));
        assert!(l.take("s", 10.0, t1).is_err());
        // Other sources have their own bucket.
        assert_eq!(l.take("other", 10.0, t1), Ok(()));
    }

    #[test]
    fn a_slow_rate_still_lets_one_request_through() {
        let t = Instant::now();
        let mut l = Limiter::default();
        assert_eq!(l.take("s", 0.5, t), Ok(()));
        let wait = l.take("s", 0.5, t).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert_eq!(l.take("s", 0.5, t + Duration::from_secs(2)), Ok(()));
        l.retain(|_| false);
        assert_eq!(l.take("s", 0.5, t + Duration::from_secs(2)), Ok(()));
    }
}
