//! Inbound webhooks under faults (issue 12): the provider's record of every attempt
//! ([`crate::inbound::Sent`]), `outbox.inbound_requests` and the worker's log against each
//! other.
//!
//! * **answers**: every attempt is a 2xx, a 503 or 429 *with* `Retry-After`, or a connection
//!   that could not be made or broke (a replica dying or restarting). Anything else (a 401, a
//!   404, a 503 without `Retry-After`, no answer within 15 s) fails.
//! * **acknowledged ⇒ stored**: every request answered 2xx at least once is in
//!   `outbox.inbound_requests` with exactly the bytes and content type sent, and a 2xx that
//!   names a `request_id` names that row. (A request never answered 2xx may be stored or
//!   not: its answer may have been lost after the commit. It is then relayed like any other.)
//! * **exactly once**: one row per idempotency key (the unique index), one event relaying each
//!   row, no row the provider never sent, and per ordering key the rows in the order the
//!   provider sent them (it sends a key's next request only after a 2xx for the last one).
//! * **relayed, byte for byte**: every stored row reached the worker with a 2xx, with its body
//!   bytes, content type, `x-inbound-x-github-delivery` and the provider's own signature
//!   (`x-inbound-x-hub-signature-256`, re-verified here over the relayed bytes), and signed by
//!   outboxd (the receiver's `signature_ok`); or its delivery is `dead` (counted apart).
//! * **order** per ordering key at the worker, by the rows' place in their key: the same rule as
//!   [`super::order`] (nothing arrives before its predecessor was answered 2xx or is dead,
//!   nothing after a successor was answered 2xx).
//! * **duplicates**: 2xx answers at the worker beyond the first per row (at-least-once:
//!   counted, not judged).

use std::collections::{BTreeMap, HashMap};

use super::order::OrderChecker;
use super::{Failures, Rule};
use crate::inbound::{Outcome, Sent, hmac_sha256};

/// One row of `outbox.inbound_requests` of the soak's source.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub idempotency_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Events relaying it.
    pub events: i64,
    /// The states of its deliveries to the worker.
    pub states: Vec<String>,
}

/// The source's stored requests, with their events and their deliveries to the worker.
pub async fn rows(db: &tokio_postgres::Client, worker_endpoint: i64) -> anyhow::Result<Vec<Row>> {
    Ok(db
        .query(
            "SELECT r.id, r.idempotency_key, r.content_type, r.body,
                    (SELECT count(*) FROM outbox.events e WHERE e.request_id = r.id),
                    ARRAY(SELECT d.state FROM outbox.events e
                            JOIN outbox.deliveries d ON d.event_pk = e.id
                           WHERE e.request_id = r.id AND d.endpoint_id = $2)
               FROM outbox.inbound_requests r WHERE r.source = $1 ORDER BY r.id",
            &[&crate::inbound::SOURCE, &worker_endpoint],
        )
        .await?
        .iter()
        .map(|r| Row {
            id: r.get(0),
            idempotency_key: r.get(1),
            content_type: r.get(2),
            body: r.get(3),
            events: r.get(4),
            states: r.get(5),
        })
        .collect())
}

/// One request the worker got, as this check reads it.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub arrival_tick: u64,
    /// The tick of its 2xx answer, if it was answered 2xx.
    pub ok_tick: Option<u64>,
    /// `x-outboxd-request-id`.
    pub request_id: Option<i64>,
    pub delivery: Option<String>,
    pub content_type: Option<String>,
    /// `x-inbound-x-hub-signature-256`.
    pub provider_signature: Option<String>,
    /// outboxd's own signature verified (with the endpoint's secret).
    pub signature_ok: bool,
    pub body: Vec<u8>,
}

impl Relayed {
    pub fn from_recorded(r: &testkit::ReceivedRequest) -> Relayed {
        let h = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Relayed {
            arrival_tick: r.arrival_tick,
            ok_tick: r.answered.filter(|_| r.is_2xx()).map(|a| a.tick),
            request_id: h("x-outboxd-request-id").and_then(|v| v.parse().ok()),
            delivery: h("x-inbound-x-github-delivery"),
            content_type: h("content-type"),
            provider_signature: h("x-inbound-x-hub-signature-256"),
            signature_ok: r.signature_ok,
            body: r.body.to_vec(),
        }
    }
}

pub struct Inbound {
    /// Requests the provider meant to deliver, and attempts made.
    pub sent: usize,
    pub attempts: usize,
    /// Attempts by how they ended: `2xx`, `503`, `429`, `refused`, `broken`, `timeout`, `other`.
    pub answers: BTreeMap<&'static str, usize>,
    /// 2xx answers saying "stored now" and "stored before" (a retry of a stored request).
    pub ok_new: usize,
    pub ok_duplicate: usize,
    /// Requests answered 2xx at least once; the rest gave up when the run ended.
    pub acked: usize,
    pub unsettled: usize,
    /// Rows of the source; of them, requests never answered 2xx (the answer was lost).
    pub stored: usize,
    pub stored_unacked: usize,
    /// Answers other than 2xx, 503/429 with `Retry-After`, or a refused or broken connection
    /// (timeouts count here).
    pub bad_answers: usize,
    /// Answered 2xx, yet not stored (or not as sent, or a 2xx naming another row).
    pub acked_not_stored: usize,
    /// Stored with other bytes or another content type than sent.
    pub stored_differs: usize,
    /// Rows nobody sent, rows relayed by other than one event, keys stored out of order.
    pub strangers: usize,
    pub not_once: usize,
    pub stored_out_of_order: usize,
    /// Rows answered 2xx by the worker with the exact request; dead ones; the rest.
    pub relayed: usize,
    pub dead: usize,
    pub lost: usize,
    /// Worker requests that were not the stored request byte for byte, or not signed right.
    pub relay_mismatch: usize,
    /// Worker requests for no stored row.
    pub relay_phantom: usize,
    pub order_violations: usize,
    /// Worker 2xx answers beyond the first per row.
    pub duplicates: usize,
    /// The first few of each kind of trouble, described.
    pub examples: Vec<String>,
    pub failures: Failures,
}

impl Inbound {
    fn example(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }
}

/// Judges the provider's record `sends`, the stored `rows` and the worker's `log` (arrival
/// order); `secret` is the source's (the provider's signature is re-verified with it).
pub fn inbound(sends: &[Sent], rows: &[Row], log: &[Relayed], secret: &str) -> Inbound {
    let mut c = Inbound {
        sent: sends.len(),
        attempts: 0,
        answers: BTreeMap::new(),
        ok_new: 0,
        ok_duplicate: 0,
        acked: 0,
        unsettled: 0,
        stored: rows.len(),
        stored_unacked: 0,
        bad_answers: 0,
        acked_not_stored: 0,
        stored_differs: 0,
        strangers: 0,
        not_once: 0,
        stored_out_of_order: 0,
        relayed: 0,
        dead: 0,
        lost: 0,
        relay_mismatch: 0,
        relay_phantom: 0,
        order_violations: 0,
        duplicates: 0,
        examples: Vec::new(),
        failures: Failures::default(),
    };
    let by_key: HashMap<&str, &Row> = rows
        .iter()
        .filter_map(|r| Some((r.idempotency_key.as_deref()?, r)))
        .collect();
    answers(&mut c, sends, &by_key);
    storage(&mut c, sends, rows);
    relay(&mut c, sends, rows, log, secret);
    judge(&mut c);
    c
}

/// Every attempt's answer, and every acknowledged request stored as sent.
fn answers(c: &mut Inbound, sends: &[Sent], by_key: &HashMap<&str, &Row>) {
    for s in sends {
        let row = by_key.get(s.id.as_str()).copied();
        for a in &s.attempts {
            c.attempts += 1;
            let name = match a.outcome {
                Outcome::Status { code, .. } if (200..300).contains(&code) => "2xx",
                Outcome::Status { code: 503, .. } => "503",
                Outcome::Status { code: 429, .. } => "429",
                Outcome::Status { .. } => "other",
                Outcome::Refused => "refused",
                Outcome::Broken => "broken",
                Outcome::Timeout => "timeout",
            };
            *c.answers.entry(name).or_default() += 1;
            let bad = match a.outcome {
                Outcome::Status {
                    code: 503 | 429,
                    retry_after,
                } => !retry_after,
                Outcome::Status { code, .. } => !(200..300).contains(&code),
                Outcome::Timeout => true,
                Outcome::Refused | Outcome::Broken => false,
            };
            if bad {
                c.bad_answers += 1;
                c.example(format!("{}: answered {:?}", s.id, a.outcome));
            }
            if a.outcome.is_2xx() {
                if a.duplicate {
                    c.ok_duplicate += 1;
                } else {
                    c.ok_new += 1;
                }
                if let (Some(named), Some(row)) = (a.request_id, row)
                    && named != row.id
                {
                    c.acked_not_stored += 1;
                    c.example(format!(
                        "{}: a 2xx named request {named}, stored as {}",
                        s.id, row.id
                    ));
                }
            }
        }
        if !s.acked() {
            c.unsettled += 1;
            if row.is_some() {
                c.stored_unacked += 1;
            }
            continue;
        }
        c.acked += 1;
        match row {
            None => {
                c.acked_not_stored += 1;
                c.example(format!("{}: answered 2xx, not stored", s.id));
            }
            Some(row)
                if row.body != s.body || row.content_type.as_deref() != Some(s.content_type) =>
            {
                c.stored_differs += 1;
                c.example(format!("{}: stored other bytes than sent", s.id));
            }
            Some(_) => {}
        }
    }
}

/// One event per row, no row nobody sent, each key's rows in the order sent.
fn storage(c: &mut Inbound, sends: &[Sent], rows: &[Row]) {
    let sent: HashMap<&str, &Sent> = sends.iter().map(|s| (s.id.as_str(), s)).collect();
    // rows are in id order: each key's seqs must grow.
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    for r in rows {
        if r.events != 1 {
            c.not_once += 1;
            c.example(format!("request {}: relayed by {} events", r.id, r.events));
        }
        let Some(s) = r.idempotency_key.as_deref().and_then(|k| sent.get(k)) else {
            c.strangers += 1;
            c.example(format!("request {}: nobody sent it", r.id));
            continue;
        };
        if let Some(prev) = last_seq.insert(&s.key, s.seq)
            && prev >= s.seq
        {
            c.stored_out_of_order += 1;
            c.example(format!("{}: seq {} stored after seq {prev}", s.key, s.seq));
        }
    }
}

/// Every row relayed to the worker byte for byte, in order per key.
fn relay(c: &mut Inbound, sends: &[Sent], rows: &[Row], log: &[Relayed], secret: &str) {
    let sent: HashMap<&str, &Sent> = sends.iter().map(|s| (s.id.as_str(), s)).collect();
    let by_id: HashMap<i64, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    // Each row's ordering key and place in it (1, 2, … in id order).
    let mut place: HashMap<i64, (&str, i64)> = HashMap::new();
    let mut count: HashMap<&str, i64> = HashMap::new();
    for r in rows {
        if let Some(s) = r.idempotency_key.as_deref().and_then(|k| sent.get(k)) {
            let n = count.entry(s.key.as_str()).or_default();
            *n += 1;
            place.insert(r.id, (s.key.as_str(), *n));
        }
    }
    let mut ok: HashMap<i64, usize> = HashMap::new();
    // (tick, is the 2xx answer, key, place)
    let mut timeline: Vec<(u64, bool, &str, i64)> = Vec::new();
    for q in log {
        let Some(row) = q.request_id.and_then(|id| by_id.get(&id)) else {
            c.relay_phantom += 1;
            c.example(format!(
                "the worker got a request for no stored row: {:?}",
                q.request_id
            ));
            continue;
        };
        if !exact(q, row, secret) {
            c.relay_mismatch += 1;
            c.example(format!("request {}: relayed other than stored", row.id));
            continue;
        }
        if let Some(&(key, n)) = place.get(&row.id) {
            timeline.push((q.arrival_tick, false, key, n));
            if let Some(t) = q.ok_tick {
                timeline.push((t, true, key, n));
            }
        }
        if q.ok_tick.is_some() {
            *ok.entry(row.id).or_default() += 1;
        }
    }
    let mut order = OrderChecker::default();
    for r in rows {
        match ok.get(&r.id) {
            Some(&n) => {
                c.relayed += 1;
                c.duplicates += n - 1;
            }
            None if r.states.iter().any(|s| s == "dead") => {
                c.dead += 1;
                if let Some(&(key, n)) = place.get(&r.id) {
                    order.dead(key, n);
                }
            }
            None => {
                c.lost += 1;
                c.example(format!(
                    "request {} ({}): never relayed with a 2xx (deliveries: {:?})",
                    r.id,
                    r.idempotency_key.as_deref().unwrap_or("-"),
                    r.states
                ));
            }
        }
    }
    timeline.sort_unstable_by_key(|t| t.0);
    for (_, is_answer, key, n) in timeline {
        if is_answer {
            order.answered_2xx(key, n);
        } else if let Some(p) = order.arrived(key, n) {
            c.order_violations += 1;
            c.example(format!("worker {key}: {p}"));
        }
    }
}

/// The worker got `row` exactly: bytes, content type, the provider's headers and signature,
/// and outboxd's signature.
fn exact(q: &Relayed, row: &Row, secret: &str) -> bool {
    let provider = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &q.body))
    );
    q.body == row.body
        && q.content_type == row.content_type
        && q.delivery == row.idempotency_key
        && q.provider_signature.as_deref() == Some(provider.as_str())
        && q.signature_ok
}

fn judge(c: &mut Inbound) {
    let f = &mut c.failures;
    f.when(
        c.acked == 0,
        Rule::InboundAnswers,
        "inbound: no request was answered 2xx".into(),
    );
    f.when(
        c.bad_answers > 0,
        Rule::InboundAnswers,
        format!(
            "inbound: answers other than 2xx, 503/429 with Retry-After or a refused or broken connection: {}",
            c.bad_answers
        ),
    );
    f.when(
        c.acked_not_stored + c.stored_differs > 0,
        Rule::InboundAckedNotStored,
        format!(
            "inbound: answered 2xx but not stored as sent: {}",
            c.acked_not_stored + c.stored_differs
        ),
    );
    f.when(
        c.lost > 0,
        Rule::InboundLost,
        format!("inbound: stored but never relayed: {}", c.lost),
    );
    f.when(
        c.order_violations + c.stored_out_of_order > 0,
        Rule::InboundOrder,
        format!(
            "inbound: order violations at the worker {}, keys stored out of order {}",
            c.order_violations, c.stored_out_of_order
        ),
    );
    f.when(
        c.relay_mismatch + c.relay_phantom > 0,
        Rule::InboundNotExact,
        format!(
            "inbound: relayed other than stored {}, relayed requests for no stored row {}",
            c.relay_mismatch, c.relay_phantom
        ),
    );
    f.when(
        c.strangers + c.not_once > 0,
        Rule::InboundStrangers,
        format!(
            "inbound: stored requests nobody sent {}, relayed by other than one event {}",
            c.strangers, c.not_once
        ),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Relayed, Row, inbound};
    use crate::check::Rule;
    use crate::inbound::{Attempt, Outcome, Sent, hmac_sha256};

    const SECRET: &str = "s3cret";

    fn sent(key: &str, seq: i64, outcomes: &[Outcome]) -> Sent {
        Sent {
            id: format!("{key}-{seq}"),
            key: key.to_owned(),
            seq,
            event: "push",
            content_type: "application/json",
            body: format!("{{\"k\":\"{key}\", \"seq\":{seq}}}").into_bytes(),
            attempts: outcomes
                .iter()
                .enumerate()
                .map(|(i, &outcome)| Attempt {
                    replica: i % 3,
                    sent_at: Duration::ZERO,
                    answered_at: Duration::ZERO,
                    outcome,
                    request_id: None,
                    duplicate: false,
                })
                .collect(),
        }
    }

    fn row(id: i64, s: &Sent) -> Row {
        Row {
            id,
            idempotency_key: Some(s.id.clone()),
            content_type: Some(s.content_type.to_owned()),
            body: s.body.clone(),
            events: 1,
            states: vec!["succeeded".into()],
        }
    }

    /// Row `r` relayed, arriving at `tick` and answered 2xx at `tick + 1`.
    fn relayed(r: &Row, tick: u64) -> Relayed {
        Relayed {
            arrival_tick: tick,
            ok_tick: Some(tick + 1),
            request_id: Some(r.id),
            delivery: r.idempotency_key.clone(),
            content_type: r.content_type.clone(),
            provider_signature: Some(format!(
                "sha256={}",
                hex::encode(hmac_sha256(SECRET.as_bytes(), &r.body))
            )),
            signature_ok: true,
            body: r.body.clone(),
        }
    }

    const OK: Outcome = Outcome::Status {
        code: 200,
        retry_after: false,
    };
    const BUSY: Outcome = Outcome::Status {
        code: 503,
        retry_after: true,
    };

    #[test]
    fn refusals_and_retries_then_each_request_stored_once_and_relayed_in_order_pass() {
        let a1 = sent("a", 1, &[Outcome::Refused, BUSY, OK]);
        let a2 = sent("a", 2, &[Outcome::Broken, OK]);
        let b1 = sent("b", 1, &[Outcome::Broken]);
        let (r1, r2, r3) = (row(1, &a1), row(2, &b1), row(3, &a2));
        // a1 is retried after a 500 at the worker and delivered twice (a duplicate).
        let mut failed = relayed(&r1, 1);
        failed.ok_tick = None;
        let log = [
            failed,
            relayed(&r1, 3),
            relayed(&r2, 5),
            relayed(&r1, 7),
            relayed(&r3, 9),
        ];
        let c = inbound(&[a1, a2, b1], &[r1, r2, r3], &log, SECRET);
        assert!(
            c.failures.rules().is_empty(),
            "{:?} {:?}",
            c.failures,
            c.examples
        );
        assert_eq!((c.sent, c.attempts, c.acked, c.unsettled), (3, 6, 2, 1));
        assert_eq!((c.stored, c.stored_unacked), (3, 1));
        assert_eq!((c.relayed, c.lost, c.duplicates), (3, 0, 1));
        let answers: Vec<_> = c.answers.into_iter().collect();
        assert_eq!(
            answers,
            [("2xx", 2), ("503", 1), ("broken", 2), ("refused", 1)]
        );
    }

    #[test]
    fn a_2xx_for_a_request_not_stored_fails() {
        let a1 = sent("a", 1, &[OK]);
        let c = inbound(&[a1], &[], &[], SECRET);
        assert_eq!(c.acked_not_stored, 1);
        assert_eq!(c.failures.rules(), [Rule::InboundAckedNotStored]);
    }

    #[test]
    fn other_bytes_stored_or_relayed_fail() {
        let a1 = sent("a", 1, &[OK]);
        let mut r1 = row(1, &a1);
        r1.body.push(b' ');
        let mut log = relayed(&r1, 1);
        log.body = b"{}".to_vec();
        let c = inbound(&[a1], &[r1], &[log], SECRET);
        assert_eq!((c.stored_differs, c.relay_mismatch, c.lost), (1, 1, 1));
        assert_eq!(
            c.failures.rules(),
            [
                Rule::InboundAckedNotStored,
                Rule::InboundLost,
                Rule::InboundNotExact
            ]
        );
    }

    #[test]
    fn a_successor_relayed_before_its_predecessor_was_answered_fails_unless_that_one_is_dead() {
        let a1 = sent("a", 1, &[OK]);
        let a2 = sent("a", 2, &[OK]);
        let (r1, r2) = (row(1, &a1), row(2, &a2));
        let mut early = relayed(&r1, 1);
        early.ok_tick = None;
        let log = [early, relayed(&r2, 3), relayed(&r1, 5)];
        let c = inbound(
            &[a1.clone(), a2.clone()],
            &[r1.clone(), r2.clone()],
            &log,
            SECRET,
        );
        // a2 came early, and a1's retry came after a2 was answered.
        assert_eq!(c.order_violations, 2, "{:?}", c.examples);
        assert_eq!(c.failures.rules(), [Rule::InboundOrder]);

        let mut dead = r1;
        dead.states = vec!["dead".into()];
        let c = inbound(&[a1, a2], &[dead, r2.clone()], &[relayed(&r2, 1)], SECRET);
        assert_eq!((c.order_violations, c.dead, c.lost), (0, 1, 0));
        assert!(c.failures.rules().is_empty());
    }

    #[test]
    fn bad_answers_strangers_and_a_second_event_fail() {
        let a1 = sent(
            "a",
            1,
            &[
                Outcome::Status {
                    code: 503,
                    retry_after: false,
                },
                Outcome::Status {
                    code: 401,
                    retry_after: false,
                },
                Outcome::Timeout,
                OK,
            ],
        );
        let mut r1 = row(1, &a1);
        r1.events = 2;
        let mut stranger = row(2, &a1);
        stranger.idempotency_key = Some("nobody".into());
        let log = [relayed(&r1, 1), relayed(&stranger, 3)];
        let c = inbound(&[a1], &[r1, stranger], &log, SECRET);
        assert_eq!((c.bad_answers, c.strangers, c.not_once), (3, 1, 1));
        assert_eq!(
            c.failures.rules(),
            [Rule::InboundAnswers, Rule::InboundStrangers]
        );
    }
}
