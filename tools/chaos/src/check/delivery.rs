//! Did every committed event reach every endpoint subscribed to it, and nothing else reach
//! any endpoint?
//!
//! A committed event × subscribed endpoint is delivered when that receiver answered it 2xx,
//! dead when its delivery is `dead` in the database (counted apart, with its `last_error`),
//! and lost otherwise (broken down by what the database says about it). Every request must be
//! for a committed event the endpoint subscribes to: not for a rolled-back one, not for one
//! nobody published.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::committed::Committed;
use super::received::Received;
use super::{Endpoint, Failures, Rule};
use crate::receiver::Request;

/// (endpoint id, event_id) → (state, last_error) of every delivery in the database.
pub type States = HashMap<(i64, String), (String, Option<String>)>;

pub struct Delivery<'a> {
    /// Committed event × subscribed endpoint pairs.
    pub expected: usize,
    /// Of those, answered 2xx.
    pub delivered: usize,
    /// Dead deliveries by (the first 60 characters of) their reason.
    pub dead: BTreeMap<String, usize>,
    /// (receiver index, event_id) of the dead ones.
    pub dead_pairs: HashSet<(usize, &'a str)>,
    /// Lost pairs by why ("still pending", "routed to no delivery", …).
    pub lost: BTreeMap<String, usize>,
    /// The first ten lost pairs, described.
    pub lost_examples: Vec<String>,
    /// Requests to an endpoint not subscribed to the event.
    pub misrouted: usize,
    /// Requests for rolled-back or otherwise uncommitted events.
    pub rolled_back_delivered: usize,
    /// Requests for events nobody published.
    pub phantom: usize,
    pub failures: Failures,
}

impl Delivery<'_> {
    pub fn lost_total(&self) -> usize {
        self.lost.values().sum()
    }

    pub fn dead_total(&self) -> usize {
        self.dead.values().sum()
    }
}

pub async fn states(db: &tokio_postgres::Client) -> anyhow::Result<States> {
    Ok(db
        .query(
            "SELECT d.endpoint_id, e.event_id, d.state, d.last_error
               FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk",
            &[],
        )
        .await?
        .iter()
        .map(|row| ((row.get(0), row.get(1)), (row.get(2), row.get(3))))
        .collect())
}

/// `in_db`: the event_ids in `outbox.events`; `states`: the deliveries in the database.
pub fn delivery<'a>(
    logs: &[Vec<Request>],
    received: &Received,
    committed: &Committed<'a>,
    in_db: &HashSet<String>,
    states: &States,
    endpoints: &[Endpoint],
) -> Delivery<'a> {
    let mut d = Delivery {
        expected: 0,
        delivered: 0,
        dead: BTreeMap::new(),
        dead_pairs: HashSet::new(),
        lost: BTreeMap::new(),
        lost_examples: Vec::new(),
        misrouted: 0,
        rolled_back_delivered: 0,
        phantom: 0,
        failures: Failures::default(),
    };
    unwanted_requests(&mut d, logs, committed, endpoints);
    for (&id, e) in &committed.events {
        for (rx, seen) in received.seen.iter().enumerate() {
            let endpoint = &endpoints[rx];
            if !endpoint.subscribed(e) {
                continue;
            }
            d.expected += 1;
            if seen.get(id).is_some_and(|s| s.ok > 0) {
                d.delivered += 1;
                continue;
            }
            match states.get(&(endpoint.id, id.to_owned())) {
                Some((s, err)) if s == "dead" => {
                    let reason = err.clone().unwrap_or_else(|| "(no reason)".into());
                    let short: String = reason.chars().take(60).collect();
                    *d.dead.entry(short).or_default() += 1;
                    d.dead_pairs.insert((rx, id));
                }
                other => {
                    let why = match other {
                        None if in_db.contains(id) => "routed to no delivery".to_owned(),
                        None => "missing from outbox.events".to_owned(),
                        Some((s, _)) if s == "succeeded" => {
                            "succeeded in the database, never answered 2xx".to_owned()
                        }
                        Some((s, _)) => format!("still {s}"),
                    };
                    if d.lost_examples.len() < 10 {
                        d.lost_examples.push(format!(
                            "{id} -> {} ({why}; {} requests)",
                            endpoint.name,
                            seen.get(id).map_or(0, |s| s.total)
                        ));
                    }
                    *d.lost.entry(why).or_default() += 1;
                }
            }
        }
    }
    judge(&mut d);
    d
}

/// Counts the requests that should not have been made at all.
fn unwanted_requests(
    d: &mut Delivery,
    logs: &[Vec<Request>],
    committed: &Committed,
    endpoints: &[Endpoint],
) {
    for (log, endpoint) in logs.iter().zip(endpoints) {
        for r in log {
            let id = r.webhook_id.as_str();
            if let Some(e) = committed.get(id) {
                if !endpoint.subscribed(e) {
                    d.misrouted += 1;
                }
            } else if committed.not_committed.contains(id) {
                d.rolled_back_delivered += 1;
            } else {
                d.phantom += 1;
            }
        }
    }
}

fn judge(d: &mut Delivery) {
    let lost_total = d.lost_total();
    let f = &mut d.failures;
    f.when(
        lost_total > 0,
        Rule::Lost,
        format!(
            "lost: {lost_total} ({})",
            d.lost
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    f.when(
        d.rolled_back_delivered > 0,
        Rule::RolledBackDelivered,
        format!(
            "requests for rolled-back/uncommitted events: {}",
            d.rolled_back_delivered
        ),
    );
    f.when(
        d.phantom > 0,
        Rule::Phantom,
        format!("requests for unknown events: {}", d.phantom),
    );
    f.when(
        d.misrouted > 0,
        Rule::Misrouted,
        format!(
            "requests to endpoints not subscribed to the event: {}",
            d.misrouted
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::{States, delivery};
    use crate::check::Rule;
    use crate::check::committed::committed;
    use crate::check::fixture::{endpoints, ledger, request, stored};
    use crate::check::received::received;
    use crate::producer::TxOutcome::{Committed, RolledBack};

    #[test]
    fn every_pair_is_delivered_dead_or_lost_and_stray_requests_fail() {
        let l = ledger(&[
            (Committed, &[("a", Some(("r", 1)))]),
            (Committed, &[("m", None)]),
            (Committed, &[("b", Some(("r", 2)))]),
            (RolledBack, &[("x", None)]),
        ]);
        let in_db = stored(&["a", "m", "b"]);
        let c = committed(&l, &in_db, &[]);
        // rx1 takes everything, rx2 only `res.*`.
        let eps = endpoints(&[true, false]);
        let logs = vec![
            vec![
                request(1, "a", Some(("r", 1)), 1.0),
                request(3, "m", None, 1.0),
                request(5, "x", None, 1.0),
            ],
            vec![
                request(1, "a", Some(("r", 1)), 1.0),
                request(3, "m", None, 1.0),
                request(5, "nobody", None, 1.0),
            ],
        ];
        let rcv = received(&logs);
        let mut states = States::new();
        states.insert((1, "b".into()), ("dead".into(), Some("HTTP 500".into())));
        states.insert((2, "b".into()), ("pending".into(), None));
        let d = delivery(&logs, &rcv, &c, &in_db, &states, &eps);
        // a → both, m → rx1 only, b → both.
        assert_eq!((d.expected, d.delivered), (5, 3));
        assert_eq!(d.dead_total(), 1);
        assert!(d.dead_pairs.contains(&(0, "b")));
        assert_eq!(d.lost.get("still pending"), Some(&1));
        assert_eq!(d.lost_examples, ["b -> rx2 (still pending; 0 requests)"]);
        assert_eq!((d.misrouted, d.rolled_back_delivered, d.phantom), (1, 1, 1));
        assert_eq!(
            d.failures.rules(),
            [
                Rule::Lost,
                Rule::RolledBackDelivered,
                Rule::Phantom,
                Rule::Misrouted
            ]
        );
    }
}
