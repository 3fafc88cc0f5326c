//! What was committed: the producers' ledger against `outbox.events` and `resources.seq`.
//!
//! The ledger says what each transaction's producer saw; the database settles the
//! transactions whose COMMIT result was lost (committed iff their events exist). Every other
//! check asks [`Committed`] whether an event_id counts.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{Failures, Rule};
use crate::producer::{EventRec, Ledger, TxOutcome};

pub struct Committed<'a> {
    ledger: &'a Ledger,
    /// event_id → the committed event.
    pub events: HashMap<&'a str, &'a EventRec>,
    /// Rolled back on purpose, failed before COMMIT, or a lost COMMIT that had not committed.
    pub not_committed: HashSet<&'a str>,
    /// Transactions whose COMMIT result was lost and that had committed.
    pub unknown_committed: usize,
    /// Transactions whose COMMIT result was lost and that had not.
    pub unknown_not_committed: usize,
    /// COMMIT succeeded, yet the event is not in `outbox.events`.
    pub missing: usize,
    /// Not committed, yet in `outbox.events`.
    pub rolled_back_stored: usize,
    /// In `outbox.events`, published by nobody.
    pub strangers: usize,
    /// Resources whose committed seqs are not exactly `1..=resources.seq`.
    pub seq_mismatch: usize,
    pub failures: Failures,
}

impl<'a> Committed<'a> {
    pub fn get(&self, id: &str) -> Option<&'a EventRec> {
        self.events.get(id).copied()
    }

    /// (resource, seq) of a committed event that has them.
    pub fn ordered(&self, id: &str) -> Option<(&'a str, i64)> {
        let e = self.get(id)?;
        Some((e.resource.as_deref()?, e.seq?))
    }

    /// When the transaction of `e` ended.
    pub fn ended_at(&self, e: &EventRec) -> Duration {
        self.ledger.txs[e.tx].ended_at
    }

    /// Committed events with a resource key.
    pub fn with_resource(&self) -> usize {
        self.events
            .values()
            .filter(|e| e.resource.is_some())
            .count()
    }
}

/// The event_ids in `outbox.events` the application published (not the events relaying
/// inbound requests: [`super::inbound`] checks those).
pub async fn stored_event_ids(db: &tokio_postgres::Client) -> anyhow::Result<HashSet<String>> {
    Ok(db
        .query(
            "SELECT event_id FROM outbox.events WHERE request_id IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// `resources` (id, seq): the application's own count of committed changes per resource.
pub async fn resource_seqs(db: &tokio_postgres::Client) -> anyhow::Result<Vec<(String, i32)>> {
    Ok(db
        .query("SELECT id, seq FROM resources", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Sorts the ledger's events into committed and not, given the event_ids in `outbox.events`
/// and the `resources` rows.
pub fn committed<'a>(
    ledger: &'a Ledger,
    in_db: &HashSet<String>,
    resource_seqs: &[(String, i32)],
) -> Committed<'a> {
    let mut c = Committed {
        ledger,
        events: HashMap::new(),
        not_committed: HashSet::new(),
        unknown_committed: 0,
        unknown_not_committed: 0,
        missing: 0,
        rolled_back_stored: 0,
        strangers: 0,
        seq_mismatch: 0,
        failures: Failures::default(),
    };
    let mut unknown_txs: HashMap<usize, bool> = HashMap::new();
    for e in &ledger.events {
        let present = in_db.contains(&e.event_id);
        let is_committed = match ledger.txs[e.tx].outcome {
            TxOutcome::Committed => {
                if !present {
                    c.missing += 1;
                }
                true
            }
            TxOutcome::Unknown => {
                unknown_txs.insert(e.tx, present);
                present
            }
            TxOutcome::RolledBack | TxOutcome::Aborted => {
                if present {
                    c.rolled_back_stored += 1;
                }
                false
            }
        };
        if is_committed {
            c.events.insert(&e.event_id, e);
        } else {
            c.not_committed.insert(&e.event_id);
        }
    }
    c.unknown_committed = unknown_txs.values().filter(|present| **present).count();
    c.unknown_not_committed = unknown_txs.len() - c.unknown_committed;
    let known: HashSet<&str> = ledger.events.iter().map(|e| e.event_id.as_str()).collect();
    c.strangers = in_db
        .iter()
        .filter(|id| !known.contains(id.as_str()))
        .count();
    c.seq_mismatch = seq_mismatches(&c, resource_seqs);
    judge(&mut c);
    c
}

/// Resources whose committed seqs are not exactly `1..=resources.seq`.
fn seq_mismatches(c: &Committed, resource_seqs: &[(String, i32)]) -> usize {
    let mut by_resource: HashMap<&str, Vec<i64>> = HashMap::new();
    for e in c.events.values() {
        if let (Some(r), Some(s)) = (&e.resource, e.seq) {
            by_resource.entry(r).or_default().push(s);
        }
    }
    let mut mismatches = 0;
    for (id, seq) in resource_seqs {
        let mut seqs = by_resource.remove(id.as_str()).unwrap_or_default();
        seqs.sort_unstable();
        let expected: Vec<i64> = (1..=i64::from(*seq)).collect();
        if seqs != expected {
            mismatches += 1;
        }
    }
    mismatches
}

fn judge(c: &mut Committed) {
    let f = &mut c.failures;
    f.when(
        c.events.is_empty(),
        Rule::NoEvents,
        "no event was committed".into(),
    );
    f.when(
        c.rolled_back_stored > 0,
        Rule::RolledBackStored,
        format!(
            "rolled-back events present in outbox.events: {}",
            c.rolled_back_stored
        ),
    );
    f.when(
        c.missing > 0,
        Rule::CommittedMissing,
        format!(
            "events whose COMMIT succeeded but are missing: {}",
            c.missing
        ),
    );
    f.when(
        c.strangers > 0,
        Rule::Strangers,
        format!("events in outbox.events nobody published: {}", c.strangers),
    );
    f.when(
        c.seq_mismatch > 0,
        Rule::SeqMismatch,
        format!(
            "resources whose committed seqs are not 1..seq: {}",
            c.seq_mismatch
        ),
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::committed;
    use crate::check::Rule;
    use crate::check::fixture::{ledger, stored};
    use crate::producer::TxOutcome::{Aborted, Committed, RolledBack, Unknown};

    #[test]
    fn a_lost_commit_counts_as_committed_exactly_when_its_events_are_stored() {
        let l = ledger(&[
            (Committed, &[("a", Some(("r", 1)))]),
            (Unknown, &[("b", Some(("r", 2)))]),
            (Unknown, &[("c", None)]),
            (RolledBack, &[("d", Some(("s", 1)))]),
            (Aborted, &[("e", None)]),
        ]);
        let c = committed(
            &l,
            &stored(&["a", "b"]),
            &[("r".into(), 2), ("s".into(), 0)],
        );
        let mut ids: Vec<&str> = c.events.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(c.not_committed, HashSet::from(["c", "d", "e"]));
        assert_eq!((c.unknown_committed, c.unknown_not_committed), (1, 1));
        assert_eq!(c.ordered("b"), Some(("r", 2)));
        assert_eq!(c.with_resource(), 2);
        assert!(c.failures.rules().is_empty(), "{:?}", c.failures);
    }

    #[test]
    fn the_database_disagreeing_with_the_ledger_fails() {
        let l = ledger(&[
            (Committed, &[("a", Some(("r", 1)))]),
            (RolledBack, &[("d", None)]),
        ]);
        // "a" missing, "d" stored although rolled back, "x" nobody's, r's seq says 2.
        let c = committed(&l, &stored(&["d", "x"]), &[("r".into(), 2)]);
        assert_eq!(
            (c.missing, c.rolled_back_stored, c.strangers, c.seq_mismatch),
            (1, 1, 1, 1)
        );
        assert_eq!(
            c.failures.rules(),
            [
                Rule::RolledBackStored,
                Rule::CommittedMissing,
                Rule::Strangers,
                Rule::SeqMismatch
            ]
        );
    }

    #[test]
    fn nothing_committed_fails() {
        let l = ledger(&[(RolledBack, &[("d", None)])]);
        let c = committed(&l, &stored(&[]), &[]);
        assert_eq!(c.failures.rules(), [Rule::NoEvents]);
    }
}
