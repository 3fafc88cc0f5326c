//! Synthetic run data for the checks' unit tests.

use std::collections::HashSet;
use std::time::Duration;

use super::Endpoint;
use crate::faults::{Fault, FaultKind};
use crate::producer::{EventRec, Ledger, TxOutcome, TxRec};
use crate::receiver::{Answer, Mode, Request};

/// An event: its id and, for `res.updated` events, (resource, seq); `None` = `misc.note`.
pub type Ev<'a> = (&'a str, Option<(&'a str, i64)>);

/// One transaction per entry, each ending at time zero, with its events.
pub fn ledger(txs: &[(TxOutcome, &[Ev])]) -> Ledger {
    let mut l = Ledger::default();
    for (outcome, events) in txs {
        let tx = l.txs.len();
        l.txs.push(TxRec {
            outcome: outcome.clone(),
            long: false,
            ended_at: Duration::ZERO,
            error: None,
        });
        for (id, ordered) in *events {
            l.events.push(EventRec {
                event_id: (*id).to_owned(),
                event_type: if ordered.is_some() {
                    "res.updated"
                } else {
                    "misc.note"
                },
                resource: ordered.map(|(r, _)| r.to_owned()),
                seq: ordered.map(|(_, s)| s),
                tx,
            });
        }
    }
    l
}

/// The event_ids in `outbox.events`.
pub fn stored(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Endpoints `rx1`, `rx2`, … with ids 1, 2, …; `true` = subscribed to `*`, else `res.*`.
pub fn endpoints(gets_misc: &[bool]) -> Vec<Endpoint<'static>> {
    const NAMES: [&str; 3] = ["rx1", "rx2", "rx3"];
    gets_misc
        .iter()
        .enumerate()
        .map(|(i, &gets_misc)| Endpoint {
            name: NAMES[i],
            id: i as i64 + 1,
            gets_misc,
        })
        .collect()
}

/// A well-signed request for event `id` (with its resource and seq), arriving as number `n` of
/// its receiver and answered 200 as number `n + 1`, `answered_at` seconds into the run.
pub fn request(n: u64, id: &str, ordered: Option<(&str, i64)>, answered_at: f64) -> Request {
    Request {
        arrived_seq: n,
        arrived_at: Duration::from_secs_f64(answered_at),
        webhook_id: id.to_owned(),
        signature_ok: true,
        payload_event: Some(id.to_owned()),
        resource: ordered.map(|(r, _)| r.to_owned()),
        seq: ordered.map(|(_, s)| s),
        answer: Answer::Status {
            code: 200,
            slow: false,
        },
        answered_seq: n + 1,
        answered_at: Duration::from_secs_f64(answered_at),
        mode: Mode::Ok,
    }
}

/// `r`, answered otherwise.
pub fn answered(r: Request, answer: Answer) -> Request {
    Request { answer, ..r }
}

/// A SIGKILL of `r1` at `at` seconds that held `leased` (endpoint id, event_id).
pub fn kill(at: f64, leased: &[(i64, &str)]) -> Fault {
    Fault {
        kind: FaultKind::Kill {
            replicas: vec!["r1".into()],
        },
        at: Duration::from_secs_f64(at),
        end: Duration::from_secs_f64(at),
        leased: leased
            .iter()
            .map(|(e, id)| (*e, (*id).to_owned()))
            .collect(),
        detail: String::new(),
    }
}
