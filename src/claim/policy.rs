//! The claim policy: how much of each endpoint this replica may claim now. Pure: it reads the
//! replica's bookkeeping and returns the [`ClaimRequest`] the claim statement enforces.
//!
//! * An endpoint with requests in flight has that many of its `max_in_flight` slots taken.
//! * A rate-limited endpoint gets only what its rate allows in about the next two seconds
//!   (so a worker never waits long for its slot while its lease runs), and nothing while its
//!   next slot is more than a second away.
//! * An open circuit gets nothing; a half-open one exactly one probe, and none while the
//!   probe is in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::query::ClaimRequest;
use crate::circuit::{Breakers, CircuitState};
use crate::pacing::Pacer;
use crate::replica::Capacity;

/// What the policy needs to know of an endpoint (from the catalog).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EndpointLimits {
    pub max_in_flight: u32,
    /// Requests per second, when limited.
    pub rate_limit: Option<f64>,
}

/// Builds the claim request for at most `limit` deliveries, serving endpoints after `cursor`
/// first. `limits` looks an endpoint up (`None`: not in the catalog).
pub(crate) fn claim_request(
    limits: impl Fn(i64) -> Option<EndpointLimits>,
    capacity: &Capacity,
    pacer: &Pacer,
    breakers: &Breakers,
    limit: usize,
    cursor: i64,
    now: Instant,
) -> ClaimRequest {
    // Slots to treat as taken per endpoint (the claim grants max_in_flight minus this).
    let mut taken: BTreeMap<i64, u32> = capacity.busy_endpoints().collect();
    let mut excluded: BTreeSet<i64> = BTreeSet::new();
    for (ep, next_slot) in pacer.slots() {
        let Some(EndpointLimits {
            max_in_flight,
            rate_limit: Some(rate),
        }) = limits(ep)
        else {
            continue;
        };
        if next_slot > now + Duration::from_secs(1) {
            excluded.insert(ep);
            continue;
        }
        let allowed = ((rate * 2.0) as u32).clamp(1, max_in_flight);
        let wanted = max_in_flight
            .saturating_sub(allowed)
            .saturating_add(capacity.in_flight(ep));
        let t = taken.entry(ep).or_insert(0);
        *t = (*t).max(wanted);
    }
    for (ep, state) in breakers.not_closed(now) {
        match (state, limits(ep)) {
            // Exactly one probe: pretend all but one slot are taken.
            (CircuitState::HalfOpen, Some(e)) if capacity.in_flight(ep) == 0 => {
                let t = taken.entry(ep).or_insert(0);
                *t = (*t).max(e.max_in_flight.saturating_sub(1));
            }
            _ => {
                excluded.insert(ep);
            }
        }
    }
    let (busy_endpoints, busy_counts) = taken
        .into_iter()
        .map(|(ep, n)| (ep, n.min(i32::MAX as u32) as i32))
        .unzip();
    ClaimRequest {
        busy_endpoints,
        busy_counts,
        excluded_endpoints: excluded.into_iter().collect(),
        limit: limit as i64,
        cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn limits(max_in_flight: u32, rate_limit: Option<f64>) -> Option<EndpointLimits> {
        Some(EndpointLimits {
            max_in_flight,
            rate_limit,
        })
    }

    /// Endpoint 1: 16 slots; 2: 16 slots at 5 requests/s; 3: 4 slots; others unknown.
    fn catalog(ep: i64) -> Option<EndpointLimits> {
        match ep {
            1 => limits(16, None),
            2 => limits(16, Some(5.0)),
            3 => limits(4, None),
            _ => None,
        }
    }

    fn request(cap: &Capacity, pacer: &Pacer, breakers: &Breakers, now: Instant) -> ClaimRequest {
        claim_request(catalog, cap, pacer, breakers, 256, 7, now)
    }

    #[test]
    fn an_idle_replica_claims_anything_up_to_the_limit() {
        let now = Instant::now();
        let req = request(
            &Capacity::default(),
            &Pacer::default(),
            &Breakers::new(5, COOLDOWN),
            now,
        );
        assert_eq!(
            req,
            ClaimRequest {
                limit: 256,
                cursor: 7,
                ..ClaimRequest::default()
            }
        );
    }

    #[test]
    fn requests_in_flight_take_their_endpoints_slots() {
        let now = Instant::now();
        let mut cap = Capacity::default();
        cap.claimed(100, 1);
        cap.claimed(101, 1);
        cap.claimed(102, 3);
        let req = request(&cap, &Pacer::default(), &Breakers::new(5, COOLDOWN), now);
        assert_eq!(req.busy_endpoints, [1, 3]);
        assert_eq!(req.busy_counts, [2, 1]);
        assert!(req.excluded_endpoints.is_empty());
    }

    #[test]
    fn a_rate_limited_endpoint_gets_two_seconds_of_its_rate_and_none_when_far_ahead() {
        let now = Instant::now();
        let cap = Capacity::default();
        let breakers = Breakers::new(5, COOLDOWN);
        let mut pacer = Pacer::default();
        pacer.reserve(2, 5.0, now);
        // 5/s → 10 requests in two seconds: 6 of its 16 slots count as taken.
        let req = request(&cap, &pacer, &breakers, now);
        assert_eq!((req.busy_endpoints, req.busy_counts), (vec![2], vec![6]));
        // Ten more reservations: the next slot is 2.2 s ahead.
        for _ in 0..10 {
            pacer.reserve(2, 5.0, now);
        }
        let req = request(&cap, &pacer, &breakers, now);
        assert_eq!(req.excluded_endpoints, [2]);
        // An endpoint the pacer knows but the catalog does not (deleted) is left alone.
        pacer.reserve(9, 1.0, now);
        assert!(
            !request(&cap, &pacer, &breakers, now)
                .busy_endpoints
                .contains(&9)
        );
    }

    #[test]
    fn an_open_circuit_gets_nothing_and_a_half_open_one_exactly_one_probe() {
        let now = Instant::now();
        let mut breakers = Breakers::new(1, COOLDOWN);
        breakers.record(3, false, now);
        let mut cap = Capacity::default();
        let pacer = Pacer::default();
        assert_eq!(
            request(&cap, &pacer, &breakers, now).excluded_endpoints,
            [3]
        );
        let later = now + COOLDOWN;
        let req = request(&cap, &pacer, &breakers, later);
        assert_eq!((req.busy_endpoints, req.busy_counts), (vec![3], vec![3]));
        // While the probe is in flight, nothing more.
        cap.claimed(1, 3);
        assert_eq!(
            request(&cap, &pacer, &breakers, later).excluded_endpoints,
            [3]
        );
        // A half-open endpoint missing from the catalog is not probed.
        breakers.record(42, false, now);
        let req = request(&Capacity::default(), &pacer, &breakers, later);
        assert_eq!(req.excluded_endpoints, [42]);
    }
}
