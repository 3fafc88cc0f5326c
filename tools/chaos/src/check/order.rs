//! Did each endpoint see each resource's events in order?
//!
//! Per endpoint and resource, in the receiver's own sequence of arrivals and answers: a
//! request for seq n must not arrive while some seq < n was neither answered 2xx before nor is
//! dead ("early"), nor after a seq > n was already answered 2xx ("backwards"). Retries and
//! duplicates of the newest seq are fine.

use std::collections::{HashMap, HashSet};

use super::committed::Committed;
use super::{Endpoint, Failures, Rule};
use crate::receiver::Request;

pub struct Order {
    pub violations: usize,
    /// The first ten, described.
    pub examples: Vec<String>,
    pub failures: Failures,
}

/// `dead_pairs`: (receiver index, event_id) of the dead deliveries, which let their
/// successors go.
pub fn order(
    logs: &[Vec<Request>],
    committed: &Committed,
    dead_pairs: &HashSet<(usize, &str)>,
    endpoints: &[Endpoint],
) -> Order {
    let mut o = Order {
        violations: 0,
        examples: Vec::new(),
        failures: Failures::default(),
    };
    for (rx, (log, endpoint)) in logs.iter().zip(endpoints).enumerate() {
        // (receiver sequence number, is answer, resource, seq)
        let mut timeline: Vec<(u64, bool, &str, i64)> = Vec::new();
        for r in log {
            let Some((res, seq)) = committed.ordered(&r.webhook_id) else {
                continue;
            };
            timeline.push((r.arrived_seq, false, res, seq));
            if r.answer.is_2xx() {
                timeline.push((r.answered_seq, true, res, seq));
            }
        }
        timeline.sort_unstable_by_key(|t| t.0);
        let mut order = OrderChecker::default();
        // Dead deliveries let their successors go: count them as done from the start.
        for &(drx, id) in dead_pairs {
            if drx != rx {
                continue;
            }
            if let Some((res, seq)) = committed.ordered(id) {
                order.dead(res, seq);
            }
        }
        for (_, is_answer, res, seq) in timeline {
            if is_answer {
                order.answered_2xx(res, seq);
            } else if let Some(p) = order.arrived(res, seq) {
                o.violations += 1;
                if o.examples.len() < 10 {
                    o.examples.push(format!("{} {res}: {p}", endpoint.name));
                }
            }
        }
    }
    o.failures.when(
        o.violations > 0,
        Rule::Order,
        format!("order violations: {}", o.violations),
    );
    o
}

/// One resource's lane as one receiver saw it.
struct Lane {
    /// `done[s]`: seq `s` was answered 2xx (or is dead). `done[0]` stands for "before 1".
    done: Vec<bool>,
    /// Every seq up to this one is done.
    contiguous: i64,
    /// The largest seq answered 2xx.
    max_ok: i64,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            done: vec![true],
            contiguous: 0,
            max_ok: 0,
        }
    }

    fn mark(&mut self, seq: i64) {
        let i = seq.max(0) as usize;
        if self.done.len() <= i {
            self.done.resize(i + 1, false);
        }
        self.done[i] = true;
        while (self.contiguous as usize + 1) < self.done.len()
            && self.done[self.contiguous as usize + 1]
        {
            self.contiguous += 1;
        }
    }
}

/// Per-resource order over one receiver's log, fed in the receiver's own sequence. Resource
/// seqs start at 1 and are contiguous (the producers' `resources.seq`; for inbound requests,
/// each stored row's place in its ordering key).
#[derive(Default)]
pub(super) struct OrderChecker<'a> {
    lanes: HashMap<&'a str, Lane>,
}

impl<'a> OrderChecker<'a> {
    /// A dead delivery: its successors may go without it.
    pub(super) fn dead(&mut self, res: &'a str, seq: i64) {
        self.lanes.entry(res).or_insert_with(Lane::new).mark(seq);
    }

    pub(super) fn answered_2xx(&mut self, res: &'a str, seq: i64) {
        let lane = self.lanes.entry(res).or_insert_with(Lane::new);
        lane.mark(seq);
        lane.max_ok = lane.max_ok.max(seq);
    }

    /// A request arrived: `Some(what is wrong)` if it breaks the order.
    pub(super) fn arrived(&mut self, res: &'a str, seq: i64) -> Option<String> {
        let lane = self.lanes.entry(res).or_insert_with(Lane::new);
        if seq > lane.contiguous + 1 {
            Some(format!(
                "seq {seq} arrived before seq {} was answered 2xx",
                lane.contiguous + 1
            ))
        } else if seq < lane.max_ok {
            Some(format!(
                "seq {seq} arrived after seq {} was answered 2xx",
                lane.max_ok
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{OrderChecker, order};
    use crate::check::Rule;
    use crate::check::committed::committed;
    use crate::check::fixture::{answered, endpoints, ledger, request, stored};
    use crate::producer::TxOutcome::Committed;
    use crate::receiver::Answer;

    #[test]
    fn in_order_with_retries_and_duplicates_is_fine() {
        let mut o = OrderChecker::default();
        assert_eq!(o.arrived("a", 1), None);
        // 1 failed, is retried, then answered 2xx twice (a duplicate after a crash).
        assert_eq!(o.arrived("a", 1), None);
        o.answered_2xx("a", 1);
        assert_eq!(o.arrived("a", 1), None);
        o.answered_2xx("a", 1);
        assert_eq!(o.arrived("a", 2), None);
        o.answered_2xx("a", 2);
        // Other resources are independent.
        assert_eq!(o.arrived("b", 1), None);
    }

    #[test]
    fn a_successor_before_its_predecessor_succeeded_is_a_violation() {
        let mut o = OrderChecker::default();
        assert_eq!(o.arrived("a", 1), None);
        assert!(o.arrived("a", 2).is_some(), "2 while 1 is unanswered");
        let mut o = OrderChecker::default();
        assert!(o.arrived("a", 2).is_some(), "2 before 1 ever arrived");
    }

    #[test]
    fn going_back_after_a_later_success_is_a_violation() {
        let mut o = OrderChecker::default();
        o.answered_2xx("a", 1);
        o.answered_2xx("a", 2);
        assert!(o.arrived("a", 1).is_some());
        assert_eq!(
            o.arrived("a", 2),
            None,
            "a duplicate of the last one is fine"
        );
        assert_eq!(o.arrived("a", 3), None);
    }

    #[test]
    fn a_dead_predecessor_lets_the_successor_go() {
        let mut o = OrderChecker::default();
        o.dead("a", 1);
        assert_eq!(o.arrived("a", 2), None);
    }

    #[test]
    fn each_receiver_log_is_read_in_its_own_sequence_with_its_own_dead_deliveries() {
        let l = ledger(&[
            (Committed, &[("a1", Some(("a", 1)))]),
            (Committed, &[("a2", Some(("a", 2)))]),
        ]);
        let c = committed(&l, &stored(&["a1", "a2"]), &[]);
        let eps = endpoints(&[true, true]);
        let logs = vec![
            // rx1: a2 arrives (as number 3) after a1 failed and before a1's retry: early.
            vec![
                answered(request(1, "a1", Some(("a", 1)), 1.0), Answer::Reset),
                answered(request(3, "a2", Some(("a", 2)), 2.0), Answer::Reset),
                request(5, "a1", Some(("a", 1)), 3.0),
            ],
            // rx2: a1 is dead there, so a2 may go first.
            vec![request(1, "a2", Some(("a", 2)), 1.0)],
        ];
        let dead = HashSet::from([(1, "a1")]);
        let o = order(&logs, &c, &dead, &eps);
        assert_eq!(o.violations, 1);
        assert_eq!(
            o.examples,
            ["rx1 a: seq 2 arrived before seq 1 was answered 2xx"]
        );
        assert_eq!(o.failures.rules(), [Rule::Order]);
    }
}
