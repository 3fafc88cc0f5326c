//! Content filters when deliveries are created: the candidates of a batch that matched only
//! through filtered subscriptions are checked by PostgreSQL inside the statement that inserts
//! the deliveries (`sql/engine/route_insert.sql`), so an event row is read once for its
//! filters and the lanes count only what passed; nothing walks JSON in the sidecar.
//!
//! A filter that cannot decide on a payload (NULL: an error in strict mode, a type mismatch,
//! a result that is not a boolean) does not let the event through that subscription; the
//! statement records it in `outbox.filter_errors`. The rare errors `silent => true` does not
//! catch abort the statement, and with it the routing transaction: the router then routes the
//! same batch again in safe mode ([`Checks::safe`]: a per-row exception handler,
//! `outbox.filter_match_safe`, about ten times the cost, so only then). No savepoint: the
//! deliveries are never written in a subtransaction.

use std::collections::HashMap;

use super::NewDelivery;
use crate::catalog::Catalog;

/// A filtered subscription, as the insert statement needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Filter<'a> {
    pub subscription_id: i64,
    pub text: &'a str,
}

/// The filter parameters of `route_insert.sql`: one row per (candidate, filter), and each
/// distinct filter text once.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Checks<'a> {
    /// 1-based into the candidates.
    pub candidate: Vec<i64>,
    pub subscription_id: Vec<i64>,
    /// 1-based into `texts`.
    pub text_n: Vec<i32>,
    pub texts: Vec<&'a str>,
    /// Every evaluation through `outbox.filter_match_safe` (catches any error).
    pub safe: bool,
}

impl<'a> Checks<'a> {
    /// The checks of `candidates`, whose [`NewDelivery::filters`] `lookup` resolves (the
    /// routing catalog's, or a replay's own list). A filter `lookup` does not know is left out,
    /// so its candidate cannot pass through it.
    pub fn of(
        candidates: &[NewDelivery],
        lookup: impl Fn(u32) -> Option<Filter<'a>>,
    ) -> Checks<'a> {
        let mut checks = Checks::default();
        let mut numbers: HashMap<&'a str, i32> = HashMap::new();
        for (i, d) in candidates.iter().enumerate() {
            for &f in &d.filters {
                let Some(filter) = lookup(f) else {
                    continue;
                };
                let n = *numbers.entry(filter.text).or_insert_with(|| {
                    checks.texts.push(filter.text);
                    checks.texts.len() as i32
                });
                checks.candidate.push(i as i64 + 1);
                checks.subscription_id.push(filter.subscription_id);
                checks.text_n.push(n);
            }
        }
        checks
    }

    /// The checks of routing candidates, whose filters index the catalog's.
    pub fn of_catalog(catalog: &'a Catalog, candidates: &[NewDelivery]) -> Checks<'a> {
        Checks::of(candidates, |f| {
            catalog.filter(f).map(|s| Filter {
                subscription_id: s.subscription_id,
                text: catalog.filter_text(s.text),
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.candidate.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(event_pk: i64, endpoint_id: i64, filters: &[u32]) -> NewDelivery {
        NewDelivery {
            event_pk,
            endpoint_id,
            lane_key: None,
            filters: filters.to_vec(),
            dead: None,
        }
    }

    #[test]
    fn each_filter_text_is_sent_once_and_candidates_are_numbered_from_one() {
        let subs = [(7, "$.a > 1"), (8, "$.b"), (9, "$.a > 1")];
        let lookup = |f: u32| {
            subs.get(f as usize).map(|&(subscription_id, text)| Filter {
                subscription_id,
                text,
            })
        };
        let candidates = [
            candidate(1, 10, &[]),
            candidate(1, 11, &[0, 1]),
            candidate(2, 11, &[2, 5]),
        ];
        let checks = Checks::of(&candidates, lookup);
        assert_eq!(checks.candidate, [2, 2, 3]);
        assert_eq!(checks.subscription_id, [7, 8, 9]);
        assert_eq!(checks.text_n, [1, 2, 1]);
        assert_eq!(checks.texts, ["$.a > 1", "$.b"]);
    }

    #[test]
    fn nothing_to_check_without_filters() {
        let cat = Catalog::default();
        let checks = Checks::of_catalog(&cat, &[candidate(1, 10, &[])]);
        assert!(checks.is_empty());
        assert_eq!(checks, Checks::default());
    }
}
