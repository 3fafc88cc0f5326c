//! The verdict: the receivers' logs and the producers' ledger against the database.
//!
//! * **committed** = the producer saw COMMIT succeed, or COMMIT's result was lost and the
//!   event_id exists in `outbox.events`. Everything else (rolled back on purpose, failed before
//!   COMMIT, unknown and absent) must never reach a receiver.
//! * **lost** = a committed event and a matching endpoint with no 2xx answer in that
//!   receiver's log and no `dead` delivery in the database.
//! * **order violation**, per endpoint and resource, in the receiver's own sequence of events:
//!   a request for seq n arrives while some seq < n of that resource was neither answered 2xx
//!   before nor is dead ("early"), or after a seq > n was already answered 2xx ("backwards").
//! * **duplicate** = one more 2xx answer for a webhook-id an endpoint had already answered 2xx.
//! * **stuck** = after the drain and one more lease period: unrouted events, pending or
//!   delivering deliveries.
//! * **recovery** of a fault = time from the fault (for receiver faults: from the end of the
//!   bad phase) to the next 2xx; for replica kills also the time until every delivery the
//!   killed replica held was answered 2xx again (lease takeover), and for every
//!   infrastructure fault the time until the first event committed after it was delivered.
//!
//! [`check`] runs the checks in order, one module each, every one returning its findings
//! (figures for the report, and its [`Failures`]):
//!
//! | module | asks |
//! |---|---|
//! | [`committed`] | what was committed; does the producers' ledger agree with the database? |
//! | [`received`] | (no verdict) the receivers' logs, indexed by endpoint and webhook-id |
//! | [`delivery`] | did every committed event reach every matching endpoint (or die visibly), and nothing else reach any? |
//! | [`signatures`] | does every request verify and carry its event's id and payload? |
//! | [`order`] | did each endpoint see each resource's events in order? |
//! | [`duplicates`] | is every repeated 2xx near a crash? |
//! | [`recovery`] | how long did each fault take to recover from? |
//! | [`storage`] | is anything stuck, are the lane counters right? |
//! | [`exits`] | did a replica crash, did every SIGTERM exit 0? |
//! | [`inbound`] | (with inbound load) was every acknowledged request stored once and relayed byte for byte, in order? |
//! | [`upgrade`] | (with `--upgrade-from`) did the new binary migrate the live database and replace every old replica? |
//!
//! [`report`] prints them all; its last line is the summary the soak's callers parse.

mod committed;
mod delivery;
mod duplicates;
mod exits;
#[cfg(test)]
mod fixture;
mod inbound;
mod order;
mod received;
mod recovery;
mod report;
mod signatures;
mod storage;
mod upgrade;

use std::time::Duration;

use crate::RunData;
use crate::receiver::Request;

pub struct Verdict {
    pub report: String,
    pub final_line: String,
    pub pass: bool,
}

/// What a failure is about. The verdict lists failures in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    NoEvents,
    Lost,
    Order,
    RolledBackDelivered,
    RolledBackStored,
    CommittedMissing,
    Stuck,
    BadSignature,
    WrongWebhookId,
    WrongPayload,
    Phantom,
    Misrouted,
    Strangers,
    SeqMismatch,
    LanesOff,
    Crashes,
    TermFailures,
    InboundAckedNotStored,
    InboundLost,
    InboundOrder,
    InboundNotExact,
    InboundStrangers,
    InboundAnswers,
    Upgrade,
}

/// The failures one check found, each under its [`Rule`].
#[derive(Debug, Default)]
pub struct Failures(Vec<(Rule, String)>);

impl Failures {
    /// Records `what` under `rule` when `failed`.
    fn when(&mut self, failed: bool, rule: Rule, what: String) {
        if failed {
            self.0.push((rule, what));
        }
    }

    #[cfg(test)]
    fn rules(&self) -> Vec<Rule> {
        self.0.iter().map(|(rule, _)| *rule).collect()
    }
}

/// A receiver and its endpoint, as the checks see them (same order as `RunData::receivers`).
pub struct Endpoint<'a> {
    pub name: &'a str,
    /// `outbox.endpoints.id`.
    pub id: i64,
    /// Subscribed to `misc.*` too, so it gets the unordered events (else only `res.*`).
    pub gets_misc: bool,
}

impl Endpoint<'_> {
    fn subscribed(&self, e: &crate::producer::EventRec) -> bool {
        e.event_type.starts_with("res.") || self.gets_misc
    }
}

/// Everything the checks found: what the report prints and the verdict judges.
struct Findings<'a> {
    committed: committed::Committed<'a>,
    received: received::Received<'a>,
    delivery: delivery::Delivery<'a>,
    signatures: signatures::Signatures,
    order: order::Order,
    duplicates: duplicates::Duplicates,
    recovery: recovery::Recovery,
    storage: storage::Storage,
    exits: exits::Exits<'a>,
    /// With inbound load.
    inbound: Option<inbound::Inbound>,
    upgrade: upgrade::UpgradeCheck<'a>,
}

impl Findings<'_> {
    /// Every check's failures, in [`Rule`] order.
    fn failures(&self) -> Vec<&str> {
        let mut lists = vec![
            &self.committed.failures,
            &self.delivery.failures,
            &self.signatures.failures,
            &self.order.failures,
            &self.storage.failures,
            &self.exits.failures,
            &self.upgrade.failures,
        ];
        lists.extend(self.inbound.as_ref().map(|i| &i.failures));
        in_rule_order(&lists)
    }
}

/// The failures of several checks as one list, in [`Rule`] order.
fn in_rule_order<'f>(lists: &[&'f Failures]) -> Vec<&'f str> {
    let mut all: Vec<&(Rule, String)> = lists.iter().flat_map(|f| &f.0).collect();
    all.sort_by_key(|(rule, _)| *rule);
    all.into_iter().map(|(_, what)| what.as_str()).collect()
}

pub async fn check(db: &tokio_postgres::Client, d: &RunData) -> anyhow::Result<Verdict> {
    let in_db = committed::stored_event_ids(db).await?;
    let resource_seqs = committed::resource_seqs(db).await?;
    let committed = committed::committed(&d.ledger, &in_db, &resource_seqs);
    let logs: Vec<Vec<Request>> = d.receivers.iter().map(|r| r.requests()).collect();
    let received = received::received(&logs);
    let endpoints: Vec<Endpoint> = d
        .receivers
        .iter()
        .zip(&d.endpoint_ids)
        .zip(&d.gets_misc)
        .map(|((r, &id), &gets_misc)| Endpoint {
            name: &r.name,
            id,
            gets_misc,
        })
        .collect();
    let states = delivery::states(db).await?;
    let delivery = delivery::delivery(&logs, &received, &committed, &in_db, &states, &endpoints);
    let signatures = signatures::signatures(&logs, &committed);
    let order = order::order(&logs, &committed, &delivery.dead_pairs, &endpoints);
    let duplicates = duplicates::duplicates(&received, &d.faults, &endpoints);
    let phases: Vec<_> = d.receivers.iter().map(|r| r.phases()).collect();
    let faults = recovery::with_receiver_faults(&d.faults, &phases);
    let recovery = recovery::recovery(&faults, &received, &committed, &endpoints);
    let storage = storage::storage(db, &d.drain).await?;
    let exits = exits::exits(&d.exits);
    let inbound = match &d.inbound {
        Some(run) => {
            let rows = inbound::rows(db, run.inbound.endpoint_id).await?;
            let log: Vec<inbound::Relayed> = run
                .inbound
                .worker
                .requests()
                .iter()
                .map(inbound::Relayed::from_recorded)
                .collect();
            Some(inbound::inbound(
                &run.sends,
                &rows,
                &log,
                &run.inbound.secret,
            ))
        }
        None => None,
    };
    let upgrade = upgrade::upgrade(d.upgrade_asked, d.upgrade.as_ref(), crate::REPLICAS);
    let findings = Findings {
        committed,
        received,
        delivery,
        signatures,
        order,
        duplicates,
        recovery,
        storage,
        exits,
        inbound,
        upgrade,
    };
    let failures = findings.failures();
    Ok(Verdict {
        report: report::report(d, &findings, &failures),
        final_line: report::final_line(&findings),
        pass: failures.is_empty(),
    })
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::{Failures, Rule, in_rule_order, median, opt_secs};
    use std::time::Duration;

    #[test]
    fn failures_are_listed_in_rule_order_whichever_check_found_them() {
        let mut storage = Failures::default();
        storage.when(true, Rule::Stuck, "stuck".into());
        let mut committed = Failures::default();
        committed.when(true, Rule::SeqMismatch, "seq".into());
        committed.when(true, Rule::NoEvents, "none".into());
        committed.when(false, Rule::Strangers, "not failed".into());
        assert_eq!(
            in_rule_order(&[&committed, &storage]),
            ["none", "stuck", "seq"]
        );
    }

    #[test]
    fn median_takes_the_upper_middle_and_none_of_nothing() {
        let s = Duration::from_secs;
        assert_eq!(median(&[s(3), s(1), s(2), s(4)]), Some(s(3)));
        assert_eq!(median(&[]), None);
        assert_eq!(opt_secs(None), "-");
        assert_eq!(opt_secs(Some(Duration::from_millis(1234))), "1.23s");
    }
}
