//! The report the soak prints: the run, its traffic, deliveries, drain, replicas, faults and
//! recovery, then the checks and the verdict; [`final_line`] is the one-line summary callers
//! parse (RELIABILITY.md quotes both, so their wording is fixed).

use std::fmt::Write as _;
use std::time::Duration;

use super::{Findings, median, opt_secs};
use crate::RunData;
use crate::clock::{at, secs};
use crate::producer::TxOutcome;

/// The whole report; `failures` is the verdict ([`Findings::failures`]).
pub(super) fn report(d: &RunData, f: &Findings, failures: &[&str]) -> String {
    let mut out = String::new();
    traffic(&mut out, d, f);
    deliveries(&mut out, d, f);
    inbound(&mut out, d, f);
    upgrade(&mut out, f);
    faults(&mut out, d, f);
    checks(&mut out, d, f, failures);
    out
}

/// `events=<n> lost=<n> order_violations=<n> duplicates=<n> faults=<n>`, with inbound load
/// ` inbound=<acknowledged> inbound_lost=<n> inbound_order_violations=<n> inbound_duplicates=<n>`,
/// and with `--upgrade-from` ` upgrade=V<old>→V<new>` (`upgrade=FAILED` or `upgrade=none`).
pub(super) fn final_line(f: &Findings) -> String {
    let mut line = format!(
        "events={} lost={} order_violations={} duplicates={} faults={}",
        f.committed.events.len(),
        f.delivery.lost_total(),
        f.order.violations,
        f.duplicates.total,
        f.recovery.faults
    );
    if let Some(i) = &f.inbound {
        let _ = write!(
            line,
            " inbound={} inbound_lost={} inbound_order_violations={} inbound_duplicates={}",
            i.acked,
            i.lost,
            i.order_violations + i.stored_out_of_order,
            i.duplicates
        );
    }
    let u = &f.upgrade;
    match u.upgrade {
        Some(up) if u.failures.0.is_empty() => {
            let _ = write!(line, " upgrade={}", up.versions());
        }
        Some(_) => line.push_str(" upgrade=FAILED"),
        None if !u.failures.0.is_empty() => line.push_str(" upgrade=none"),
        None => {}
    }
    line
}

/// The live upgrade: the migration on the live database, what the old replicas made of it,
/// and their replacement.
fn upgrade(out: &mut String, f: &Findings) {
    let Some(u) = f.upgrade.upgrade else {
        return;
    };
    let _ = writeln!(
        out,
        "upgrade: the new binary's outboxd migrate took the live database {} in {}{}; old \
         replicas replaced cleanly by new ones: {}/{}",
        u.versions(),
        secs(u.took),
        u.error
            .as_ref()
            .map_or(String::new(), |e| format!(" and FAILED: {e}")),
        f.upgrade.clean,
        f.upgrade.replicas
    );
    for (replica, answer) in &u.old_readyz {
        let _ = writeln!(
            out,
            "  old {replica} /readyz right after the migration: {answer}"
        );
    }
    for r in &u.replaced {
        let _ = writeln!(
            out,
            "  old {} recorded {} attempts ({} answered 2xx) on the new schema before its SIGTERM",
            r.replica, r.attempts, r.attempts_2xx
        );
    }
}

/// The provider's requests, their answers, what was stored and what the worker got.
fn inbound(out: &mut String, d: &RunData, f: &Findings) {
    let (Some(run), Some(i)) = (&d.inbound, &f.inbound) else {
        return;
    };
    let _ = writeln!(
        out,
        "inbound: {} requests sent ({} req/s target, {} ordering keys, source `{}`, github \
         signatures), {} attempts ({}); 2xx: {} stored now, {} already stored (a retry whose \
         first answer was lost)",
        i.sent,
        run.rps,
        crate::inbound::KEYS,
        crate::inbound::SOURCE,
        i.attempts,
        listed(i.answers.iter()),
        i.ok_new,
        i.ok_duplicate
    );
    let _ = writeln!(
        out,
        "  acknowledged {} ({} given up when the run ended); stored {} ({} never acknowledged: \
         the answer was lost); worker: {} requests, relayed byte for byte {}/{} (dead {}, lost \
         {}), duplicates delivered {} ({:.2} %)",
        i.acked,
        i.unsettled,
        i.stored,
        i.stored_unacked,
        run.inbound.worker.count(),
        i.relayed,
        i.stored,
        i.dead,
        i.lost,
        i.duplicates,
        pct(i.duplicates, i.relayed)
    );
}

/// The run, the producers' transactions, the events and the requests.
fn traffic(out: &mut String, d: &RunData, f: &Findings) {
    let txs = &d.ledger.txs;
    let count = |o: TxOutcome| txs.iter().filter(|t| t.outcome == o).count();
    let late = txs
        .iter()
        .filter(|t| t.long && t.outcome == TxOutcome::Committed)
        .count();
    let c = &f.committed;
    let events = c.events.len();
    let ordered = c.with_resource();
    let _ = writeln!(out, "\n== outboxd-chaos report ==");
    let _ = writeln!(
        out,
        "run: seed {}, {} of faults, {} tx/s target, PostgreSQL fsync {}",
        d.seed,
        secs(d.chaos),
        d.tps,
        if d.fsync { "on" } else { "off" }
    );
    let _ = writeln!(
        out,
        "transactions: {} — {} committed ({} late, after sleeping 1-3 s), {} rolled back, \
         {} aborted by faults, {} with a lost COMMIT result ({} had committed, {} had not)",
        txs.len(),
        count(TxOutcome::Committed),
        late,
        count(TxOutcome::RolledBack),
        count(TxOutcome::Aborted),
        c.unknown_committed + c.unknown_not_committed,
        c.unknown_committed,
        c.unknown_not_committed
    );
    let _ = writeln!(
        out,
        "events: {events} committed ({ordered} over {} resources, {} unordered), {} never \
         committed; {} event x endpoint deliveries expected",
        crate::RESOURCES,
        events - ordered,
        c.not_committed.len(),
        f.delivery.expected
    );
    let _ = writeln!(
        out,
        "late commits: {} events were routed after an event with a larger id \
         (an `id > last_seen` reader would have skipped them)",
        f.storage.overtaken
    );
    let _ = writeln!(
        out,
        "requests: {} ({}); {} connections, {} requests cut off by the \
         sender; attempts recorded: {} ({})",
        f.received.requests,
        listed(f.received.answers.iter()),
        d.receivers
            .iter()
            .map(|r| r.counters().connections)
            .sum::<u64>(),
        d.receivers
            .iter()
            .map(|r| r.counters().truncated)
            .sum::<u64>(),
        f.storage.attempts_total(),
        listed(f.storage.attempts.iter().map(|(k, v)| (k, v)))
    );
}

/// `k: v, k: v`
fn listed<K: std::fmt::Display, V: std::fmt::Display>(
    pairs: impl Iterator<Item = (K, V)>,
) -> String {
    pairs
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Delivered, duplicated, dead; the drain; the monitor's samples.
fn deliveries(out: &mut String, d: &RunData, f: &Findings) {
    let (delivery, duplicates) = (&f.delivery, &f.duplicates);
    let _ = writeln!(
        out,
        "delivered: {}/{} (dead with a reason: {}); \
         duplicates: {} ({:.2} % of deliveries, all with the event's own webhook-id: {})",
        delivery.delivered,
        delivery.expected,
        delivery.dead_total(),
        duplicates.total,
        pct(duplicates.total, delivery.delivered),
        if f.signatures.id_mismatch == 0 {
            "yes"
        } else {
            "NO"
        }
    );
    let _ = writeln!(
        out,
        "  duplicates with no replica kill, SIGTERM or PostgreSQL restart around them: {}",
        duplicates.unexplained.len()
    );
    for u in duplicates.unexplained.iter().take(5) {
        let _ = writeln!(out, "    {u}");
    }
    for (reason, n) in &delivery.dead {
        let _ = writeln!(out, "  dead: {n} x {reason}");
    }
    let _ = writeln!(
        out,
        "drain: {} in {} (left then: {} unrouted, {} pending, {} delivering); after one more \
         lease: {} unrouted, {} pending, {} delivering ({} with an expired lease)",
        if d.drain.drained {
            "complete"
        } else {
            "INCOMPLETE"
        },
        secs(d.drain.took),
        d.drain.left_at_deadline.0,
        d.drain.left_at_deadline.1,
        d.drain.left_at_deadline.2,
        d.drain.unrouted,
        d.drain.pending,
        d.drain.delivering,
        d.drain.expired_leases
    );
    let _ = writeln!(
        out,
        "sampled twice a second ({} samples, {} while PostgreSQL was away): an expired lease \
         waited at most {} for its rescue (at {}); the oldest unrouted event was at most {} old \
         (at {})",
        d.samples.taken,
        d.samples.failed,
        secs(d.samples.max_expired_lease),
        at(d.samples.max_expired_lease_at),
        secs(d.samples.max_routing_lag),
        at(d.samples.max_routing_lag_at)
    );
}

/// Replica processes, then every fault and how long it took to recover from.
fn faults(out: &mut String, d: &RunData, f: &Findings) {
    let x = &f.exits;
    let _ = writeln!(
        out,
        "replicas: {} processes started; {} SIGTERM stops ({} not exit 0, slowest {}); {} \
         crashes; {} refused to start (exit 1, database unavailable at start)",
        d.spawned,
        x.terms,
        x.term_failures.len(),
        opt_secs(x.max_term),
        x.unexpected.len(),
        x.refused.len()
    );
    for e in &x.refused {
        let last = e
            .log_tail
            .as_deref()
            .and_then(|t| t.lines().last())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "  {} (gen {}) at {}: {last}",
            e.replica,
            e.generation,
            at(e.at)
        );
    }
    let r = &f.recovery;
    let _ = writeln!(
        out,
        "faults: {} — {} replica/PostgreSQL faults, {} receiver bad phases",
        r.faults,
        r.infra_faults,
        r.faults - r.infra_faults
    );
    let _ = writeln!(
        out,
        "recovery by fault kind (median / max): next 2xx | first event committed after it delivered"
    );
    for (label, v) in &r.groups {
        let next: Vec<Duration> = v.iter().filter_map(|x| x.0).collect();
        let fresh: Vec<Duration> = v.iter().filter_map(|x| x.1).collect();
        let _ = writeln!(
            out,
            "  {:<32} x{:<3} {} | {}",
            label,
            v.len(),
            median_max(&next),
            if fresh.is_empty() {
                "-".to_owned()
            } else {
                median_max(&fresh)
            }
        );
    }
    if !r.takeover.is_empty() || r.takeover_missing > 0 {
        let _ = writeln!(
            out,
            "  lease takeover after SIGKILL: {} deliveries held by killed replicas, re-delivered \
             after median {} / max {} ({} never answered 2xx after the kill)",
            r.takeover.len() + r.takeover_missing,
            opt_secs(median(&r.takeover)),
            opt_secs(r.takeover.iter().max().copied()),
            r.takeover_missing
        );
    }
    let _ = writeln!(out, "replica and PostgreSQL faults in order:");
    for l in &r.fault_lines {
        let _ = writeln!(out, "{l}");
    }
}

/// `1.20s / 3.40s`
fn median_max(v: &[Duration]) -> String {
    format!(
        "{} / {}",
        opt_secs(median(v)),
        opt_secs(v.iter().max().copied())
    )
}

/// The checks' counts, their examples, and PASS or the failures.
fn checks(out: &mut String, d: &RunData, f: &Findings, failures: &[&str]) {
    let protocol_errors: u64 = d
        .receivers
        .iter()
        .map(|r| r.counters().protocol_errors)
        .sum();
    let _ = writeln!(
        out,
        "checks: lost {}, order violations {}, rolled-back delivered \
         {}, stuck {}, bad signatures {}, misrouted \
         {}, phantom {}, lane counters off {}, receiver protocol errors \
         {protocol_errors}",
        f.delivery.lost_total(),
        f.order.violations,
        f.delivery.rolled_back_delivered,
        f.storage.stuck,
        f.signatures.bad_signature,
        f.delivery.misrouted,
        f.delivery.phantom,
        f.storage.lanes_off
    );
    for r in &d.receivers {
        for why in r.protocol_error_examples() {
            let _ = writeln!(out, "  {} could not parse a request: {why}", r.name);
        }
    }
    if let Some(i) = &f.inbound {
        let _ = writeln!(
            out,
            "inbound checks: acknowledged not stored {}, stored other than sent {}, lost {}, \
             order violations {} (stored out of order {}), relayed other than stored {}, \
             relayed for no stored row {}, stored nobody's {}, not one event {}, bad answers {}",
            i.acked_not_stored,
            i.stored_differs,
            i.lost,
            i.order_violations,
            i.stored_out_of_order,
            i.relay_mismatch,
            i.relay_phantom,
            i.strangers,
            i.not_once,
            i.bad_answers
        );
        for e in &i.examples {
            let _ = writeln!(out, "  inbound: {e}");
        }
    }
    for e in &f.delivery.lost_examples {
        let _ = writeln!(out, "  lost: {e}");
    }
    for e in &f.order.examples {
        let _ = writeln!(out, "  order: {e}");
    }
    for e in f
        .exits
        .unexpected
        .iter()
        .chain(f.exits.term_failures.iter())
    {
        let _ = writeln!(
            out,
            "  replica {} (gen {}) {:?} at {}: {} — log {}:\n{}",
            e.replica,
            e.generation,
            e.cause,
            at(e.at),
            e.status,
            e.log.display(),
            e.log_tail.clone().unwrap_or_default()
        );
    }
    if failures.is_empty() {
        let _ = writeln!(out, "PASS");
    } else {
        let _ = writeln!(out, "FAIL:\n  {}", failures.join("\n  "));
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}
