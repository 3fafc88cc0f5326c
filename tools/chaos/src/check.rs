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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::RunData;
use crate::clock::{at, secs};
use crate::faults::{Fault, FaultKind};
use crate::producer::TxOutcome;
use crate::receiver::{Answer, lock};
use crate::replicas::ExitCause;

pub struct Verdict {
    pub report: String,
    pub final_line: String,
    pub pass: bool,
}

#[derive(Default, Clone)]
struct Seen {
    ok: u32,
    total: u32,
    ok_times: Vec<Duration>,
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
/// seqs start at 1 and are contiguous (the producers' `resources.seq`).
#[derive(Default)]
struct OrderChecker<'a> {
    lanes: HashMap<&'a str, Lane>,
}

impl<'a> OrderChecker<'a> {
    /// A dead delivery: its successors may go without it.
    fn dead(&mut self, res: &'a str, seq: i64) {
        self.lanes.entry(res).or_insert_with(Lane::new).mark(seq);
    }

    fn answered_2xx(&mut self, res: &'a str, seq: i64) {
        let lane = self.lanes.entry(res).or_insert_with(Lane::new);
        lane.mark(seq);
        lane.max_ok = lane.max_ok.max(seq);
    }

    /// A request arrived: `Some(what is wrong)` if it breaks the order.
    fn arrived(&mut self, res: &'a str, seq: i64) -> Option<String> {
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

pub async fn check(db: &tokio_postgres::Client, d: &RunData) -> anyhow::Result<Verdict> {
    let mut out = String::new();
    let mut failures: Vec<String> = Vec::new();
    let ledger = &d.ledger;

    // --- what was committed -------------------------------------------------------------
    let in_db: HashSet<String> = db
        .query("SELECT event_id FROM outbox.events", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut committed: HashMap<&str, usize> = HashMap::new(); // event_id -> index in events
    let mut not_committed: HashSet<&str> = HashSet::new();
    let mut committed_missing = 0usize;
    let mut rollback_present = 0usize;
    let (mut unknown_yes, mut unknown_no) = (0usize, 0usize);
    let mut unknown_txs: HashMap<usize, bool> = HashMap::new();
    for (i, e) in ledger.events.iter().enumerate() {
        let tx = &ledger.txs[e.tx];
        let present = in_db.contains(&e.event_id);
        let is_committed = match tx.outcome {
            TxOutcome::Committed => {
                if !present {
                    committed_missing += 1;
                }
                true
            }
            TxOutcome::Unknown => {
                unknown_txs.insert(e.tx, present);
                present
            }
            TxOutcome::RolledBack | TxOutcome::Aborted => {
                if present {
                    rollback_present += 1;
                }
                false
            }
        };
        if is_committed {
            committed.insert(&e.event_id, i);
        } else {
            not_committed.insert(&e.event_id);
        }
    }
    for present in unknown_txs.values() {
        if *present {
            unknown_yes += 1;
        } else {
            unknown_no += 1;
        }
    }
    let known: HashSet<&str> = ledger.events.iter().map(|e| e.event_id.as_str()).collect();
    let db_strangers = in_db
        .iter()
        .filter(|id| !known.contains(id.as_str()))
        .count();

    // Per resource: committed seqs are exactly 1..=resources.seq.
    let mut by_resource: HashMap<&str, Vec<i64>> = HashMap::new();
    for &i in committed.values() {
        let e = &ledger.events[i];
        if let (Some(r), Some(s)) = (&e.resource, e.seq) {
            by_resource.entry(r).or_default().push(s);
        }
    }
    let mut seq_mismatch = 0usize;
    for row in db.query("SELECT id, seq FROM resources", &[]).await? {
        let (id, seq): (String, i32) = (row.get(0), row.get(1));
        let mut seqs = by_resource.remove(id.as_str()).unwrap_or_default();
        seqs.sort_unstable();
        let expected: Vec<i64> = (1..=i64::from(seq)).collect();
        if seqs != expected {
            seq_mismatch += 1;
        }
    }

    // --- the receivers' logs ---------------------------------------------------------------
    let logs: Vec<Vec<crate::receiver::Request>> =
        d.receivers.iter().map(|r| r.requests()).collect();
    let mut seen: Vec<HashMap<&str, Seen>> = vec![HashMap::new(); logs.len()];
    let mut answers: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut bad_signature, mut id_mismatch, mut rolled_back_delivered, mut phantom) =
        (0usize, 0usize, 0usize, 0usize);
    let mut misrouted = 0usize;
    let mut payload_mismatch = 0usize;
    let mut all_ok_times: Vec<Duration> = Vec::new();
    let mut rx_ok_times: Vec<Vec<Duration>> = vec![Vec::new(); logs.len()];
    let mut first_ok: HashMap<&str, Duration> = HashMap::new();
    let expected_at = |e: &crate::producer::EventRec, rx: usize| {
        e.event_type.starts_with("res.") || d.gets_misc[rx]
    };
    for (rx, log) in logs.iter().enumerate() {
        for r in log {
            let kind = match r.answer {
                Answer::Status { code, slow: false } => code_name(code),
                Answer::Status { code, slow: true } if (200..300).contains(&code) => "2xx slow",
                Answer::Status { .. } => "other slow",
                Answer::Hang => "hang",
                Answer::Reset => "reset",
                Answer::Pending => "unanswered",
            };
            *answers.entry(kind).or_default() += 1;
            if !r.signature_ok {
                bad_signature += 1;
            }
            if r.payload_event.as_deref() != Some(r.webhook_id.as_str()) {
                id_mismatch += 1;
            }
            let id = r.webhook_id.as_str();
            if let Some(&i) = committed.get(id) {
                let e = &ledger.events[i];
                if !expected_at(e, rx) {
                    misrouted += 1;
                }
                if r.resource != e.resource || r.seq != e.seq {
                    payload_mismatch += 1;
                }
            } else if not_committed.contains(id) {
                rolled_back_delivered += 1;
            } else {
                phantom += 1;
            }
            let s = seen[rx].entry(id).or_default();
            s.total += 1;
            if r.answer.is_2xx() {
                s.ok += 1;
                s.ok_times.push(r.answered_at);
                all_ok_times.push(r.answered_at);
                rx_ok_times[rx].push(r.answered_at);
                let f = first_ok.entry(id).or_insert(r.answered_at);
                *f = (*f).min(r.answered_at);
            }
        }
    }
    all_ok_times.sort_unstable();
    for t in &mut rx_ok_times {
        t.sort_unstable();
    }

    // --- deliveries in the database ------------------------------------------------------------
    let mut deliveries: HashMap<(i64, String), (String, Option<String>)> = HashMap::new();
    for row in db
        .query(
            "SELECT d.endpoint_id, e.event_id, d.state, d.last_error
               FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk",
            &[],
        )
        .await?
    {
        deliveries.insert((row.get(0), row.get(1)), (row.get(2), row.get(3)));
    }

    // --- lost, dead, duplicates ------------------------------------------------------------------
    let mut expected_pairs = 0usize;
    let mut delivered_pairs = 0usize;
    let mut dead: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost_examples: Vec<String> = Vec::new();
    let mut dead_pairs: HashSet<(usize, &str)> = HashSet::new();
    for (&id, &i) in &committed {
        let e = &ledger.events[i];
        for (rx, seen_rx) in seen.iter().enumerate() {
            if !expected_at(e, rx) {
                continue;
            }
            expected_pairs += 1;
            if seen_rx.get(id).is_some_and(|s| s.ok > 0) {
                delivered_pairs += 1;
                continue;
            }
            let state = deliveries.get(&(d.endpoint_ids[rx], id.to_owned()));
            match state {
                Some((s, err)) if s == "dead" => {
                    let reason = err.clone().unwrap_or_else(|| "(no reason)".into());
                    let short: String = reason.chars().take(60).collect();
                    *dead.entry(short).or_default() += 1;
                    dead_pairs.insert((rx, id));
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
                    if lost_examples.len() < 10 {
                        lost_examples.push(format!(
                            "{id} -> {} ({why}; {} requests)",
                            d.receivers[rx].name,
                            seen_rx.get(id).map_or(0, |s| s.total)
                        ));
                    }
                    *lost.entry(why).or_default() += 1;
                }
            }
        }
    }
    let lost_total: usize = lost.values().sum();
    let dead_total: usize = dead.values().sum();
    let duplicates: usize = seen
        .iter()
        .flat_map(|m| m.values())
        .map(|s| s.ok.saturating_sub(1) as usize)
        .sum();
    let requests: usize = logs.iter().map(Vec::len).sum();
    // SPEC §4: duplicates only around a crash. A repeated 2xx is "explained" when a replica
    // kill, a SIGTERM or a PostgreSQL restart happened between shortly before the first 2xx
    // (the request timeout: the attempt may have been running) and the repeat.
    let mut unexplained: Vec<String> = Vec::new();
    for (rx, m) in seen.iter().enumerate() {
        for (id, s) in m {
            if s.ok < 2 {
                continue;
            }
            let mut t = s.ok_times.clone();
            t.sort_unstable();
            let (first, last) = (t[0], t[t.len() - 1]);
            let near = d.faults.iter().any(|f| {
                f.at + Duration::from_secs(1) >= first && f.at <= last + Duration::from_secs(1)
            });
            if !near {
                unexplained.push(format!(
                    "{id} at {}: 2xx at {} and {}",
                    d.receivers[rx].name,
                    at(first),
                    at(last)
                ));
            }
        }
    }

    // --- order ----------------------------------------------------------------------------
    let mut order_violations = 0usize;
    let mut order_examples: Vec<String> = Vec::new();
    for (rx, log) in logs.iter().enumerate() {
        // (receiver sequence number, is answer, resource, seq)
        let mut timeline: Vec<(u64, bool, &str, i64)> = Vec::new();
        for r in log {
            let Some(&i) = committed.get(r.webhook_id.as_str()) else {
                continue;
            };
            let e = &ledger.events[i];
            let (Some(res), Some(seq)) = (e.resource.as_deref(), e.seq) else {
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
        for &(drx, id) in &dead_pairs {
            if drx != rx {
                continue;
            }
            if let Some(&i) = committed.get(id) {
                let e = &ledger.events[i];
                if let (Some(res), Some(seq)) = (e.resource.as_deref(), e.seq) {
                    order.dead(res, seq);
                }
            }
        }
        for (_, is_answer, res, seq) in timeline {
            if is_answer {
                order.answered_2xx(res, seq);
            } else if let Some(p) = order.arrived(res, seq) {
                order_violations += 1;
                if order_examples.len() < 10 {
                    order_examples.push(format!("{} {res}: {p}", d.receivers[rx].name));
                }
            }
        }
    }

    // --- faults and recovery ------------------------------------------------------------------
    let mut faults = d.faults.clone();
    for (rx, r) in d.receivers.iter().enumerate() {
        for p in r.phases() {
            if p.mode.is_fault() {
                faults.push(Fault {
                    kind: FaultKind::Receiver {
                        receiver: rx,
                        mode: p.mode,
                    },
                    at: p.start,
                    end: p.end,
                    leased: Vec::new(),
                    detail: String::new(),
                });
            }
        }
    }
    faults.sort_by_key(|f| f.at);
    let next_after = |times: &[Duration], t: Duration| {
        let i = times.partition_point(|x| *x < t);
        times.get(i).map(|x| *x - t)
    };
    let mut commits: Vec<(Duration, &str)> = committed
        .iter()
        .map(|(&id, &i)| (ledger.txs[ledger.events[i].tx].ended_at, id))
        .collect();
    commits.sort_unstable();
    let fresh_after = |t: Duration| {
        let start = commits.partition_point(|c| c.0 < t);
        commits[start..]
            .iter()
            .filter_map(|(_, id)| first_ok.get(id))
            .min()
            .map(|x| x.saturating_sub(t))
    };
    let rx_of = |endpoint: i64| d.endpoint_ids.iter().position(|&e| e == endpoint);
    // Per fault kind: (next 2xx, first new event delivered) after each fault.
    type Recovery = (Option<Duration>, Option<Duration>);
    let mut groups: BTreeMap<String, Vec<Recovery>> = BTreeMap::new();
    let mut takeover: Vec<Duration> = Vec::new();
    let mut takeover_missing = 0usize;
    let mut fault_lines = Vec::new();
    for f in &faults {
        let (next, fresh) = match &f.kind {
            FaultKind::Receiver { receiver, .. } => {
                (next_after(&rx_ok_times[*receiver], f.end), None)
            }
            _ => (next_after(&all_ok_times, f.at), fresh_after(f.at)),
        };
        groups
            .entry(f.kind.label())
            .or_default()
            .push((next, fresh));
        let mut line = format!(
            "  {:>7} {:<32} next 2xx {}",
            at(f.at),
            match &f.kind {
                FaultKind::Kill { replicas } => format!("SIGKILL {}", replicas.join("+")),
                FaultKind::Term {
                    replica,
                    code,
                    shutdown_time,
                } => format!(
                    "SIGTERM {replica}: exit {} in {}",
                    code.map_or("?".into(), |c| c.to_string()),
                    shutdown_time.map_or("?".into(), secs)
                ),
                FaultKind::PgRestart { immediate } => format!(
                    "PostgreSQL {} restart, down {}",
                    if *immediate { "immediate" } else { "fast" },
                    secs(f.end - f.at)
                ),
                FaultKind::Receiver { receiver, mode } => format!(
                    "{} {} for {}",
                    d.receivers[*receiver].name,
                    mode.name(),
                    secs(f.end - f.at)
                ),
            },
            opt_secs(next),
        );
        if let Some(fr) = fresh {
            let _ = write!(line, ", first new event delivered {}", secs(fr));
        }
        if let FaultKind::Kill { .. } = f.kind {
            let mut worst: Option<Duration> = None;
            for (ep, id) in &f.leased {
                let t = rx_of(*ep)
                    .and_then(|rx| seen[rx].get(id.as_str()))
                    .and_then(|s| s.ok_times.iter().filter(|t| **t >= f.at).min().copied());
                match t {
                    Some(t) => {
                        let d = t - f.at;
                        takeover.push(d);
                        worst = Some(worst.map_or(d, |w| w.max(d)));
                    }
                    None => takeover_missing += 1,
                }
            }
            if f.leased.is_empty() {
                line.push_str(", held no delivery");
            } else {
                let _ = write!(
                    line,
                    ", its {} held deliveries re-delivered within {}",
                    f.leased.len(),
                    opt_secs(worst)
                );
            }
        }
        if !f.detail.is_empty() {
            let _ = write!(line, " [{}]", f.detail);
        }
        if !matches!(f.kind, FaultKind::Receiver { .. }) {
            fault_lines.push(line);
        }
    }
    let infra_faults = d.faults.len();
    let receiver_faults = faults.len() - infra_faults;

    // --- replicas, storage consistency, attempts ----------------------------------------------
    let unexpected: Vec<_> = d
        .exits
        .iter()
        .filter(|e| e.cause == ExitCause::Unexpected && !e.refused_to_start())
        .collect();
    let refused: Vec<_> = d.exits.iter().filter(|e| e.refused_to_start()).collect();
    let term_failures: Vec<_> = d
        .exits
        .iter()
        .filter(|e| e.cause == ExitCause::Terminated && e.code != Some(0))
        .collect();
    let terms = d
        .exits
        .iter()
        .filter(|e| e.cause == ExitCause::Terminated)
        .count();
    let max_term = d
        .exits
        .iter()
        .filter(|e| e.cause == ExitCause::Terminated)
        .filter_map(|e| e.shutdown_time)
        .max();
    let lanes_off: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox.lanes l
              WHERE l.pending <> (SELECT count(*) FROM outbox.deliveries d
                                   WHERE d.endpoint_id = l.endpoint_id AND d.lane_key = l.lane_key
                                     AND d.state IN ('pending', 'delivering'))",
            &[],
        )
        .await?
        .get(0);
    let attempts: Vec<(String, i64)> = db
        .query(
            "SELECT coalesce(error_kind, 'ok ' || coalesce(status_code::text, '')), count(*)
               FROM outbox.attempts GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Late commits a `id > last_seen` watermark would have skipped: routed after an event
    // with a larger id.
    let overtaken: i64 = db
        .query_one(
            "SELECT count(*) FROM (
                SELECT routed_at, min(routed_at) OVER (ORDER BY id DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS first_later
                  FROM outbox.events) x
              WHERE x.first_later < x.routed_at",
            &[],
        )
        .await?
        .get(0);
    let attempts_total: i64 = attempts.iter().map(|a| a.1).sum();
    let stuck = (d.drain.unrouted + d.drain.pending + d.drain.delivering) as usize;
    let protocol_errors: u64 = d
        .receivers
        .iter()
        .map(|r| r.protocol_errors.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let truncated: u64 = d
        .receivers
        .iter()
        .map(|r| r.truncated.load(std::sync::atomic::Ordering::Relaxed))
        .sum();

    // --- the report ---------------------------------------------------------------------------
    let txs = &ledger.txs;
    let count = |o: TxOutcome| txs.iter().filter(|t| t.outcome == o).count();
    let late = txs
        .iter()
        .filter(|t| t.long && t.outcome == TxOutcome::Committed)
        .count();
    let events = committed.len();
    let ordered = committed
        .values()
        .filter(|&&i| ledger.events[i].resource.is_some())
        .count();
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
        unknown_yes + unknown_no,
        unknown_yes,
        unknown_no
    );
    let _ = writeln!(
        out,
        "events: {events} committed ({ordered} over {} resources, {} unordered), {} never \
         committed; {expected_pairs} event x endpoint deliveries expected",
        crate::RESOURCES,
        events - ordered,
        not_committed.len()
    );
    let _ = writeln!(
        out,
        "late commits: {overtaken} events were routed after an event with a larger id \
         (an `id > last_seen` reader would have skipped them)"
    );
    let _ = writeln!(
        out,
        "requests: {requests} ({}); {} connections, {truncated} requests cut off by the \
         sender; attempts recorded: {attempts_total} ({})",
        answers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        d.receivers
            .iter()
            .map(|r| r.connections.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>(),
        attempts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "delivered: {delivered_pairs}/{expected_pairs} (dead with a reason: {dead_total}); \
         duplicates: {duplicates} ({:.2} % of deliveries, all with the event's own webhook-id: {})",
        pct(duplicates, delivered_pairs),
        if id_mismatch == 0 { "yes" } else { "NO" }
    );
    let _ = writeln!(
        out,
        "  duplicates with no replica kill, SIGTERM or PostgreSQL restart around them: {}",
        unexplained.len()
    );
    for u in unexplained.iter().take(5) {
        let _ = writeln!(out, "    {u}");
    }
    for (reason, n) in &dead {
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
    let _ = writeln!(
        out,
        "replicas: {} processes started; {} SIGTERM stops ({} not exit 0, slowest {}); {} \
         crashes; {} refused to start (exit 1, database unavailable at start)",
        d.spawned,
        terms,
        term_failures.len(),
        opt_secs(max_term),
        unexpected.len(),
        refused.len()
    );
    for e in &refused {
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
    let _ = writeln!(
        out,
        "faults: {} — {} replica/PostgreSQL faults, {} receiver bad phases",
        faults.len(),
        infra_faults,
        receiver_faults
    );
    let _ = writeln!(
        out,
        "recovery by fault kind (median / max): next 2xx | first event committed after it delivered"
    );
    for (label, v) in &groups {
        let next: Vec<Duration> = v.iter().filter_map(|x| x.0).collect();
        let fresh: Vec<Duration> = v.iter().filter_map(|x| x.1).collect();
        let _ = writeln!(
            out,
            "  {:<32} x{:<3} {} / {} | {}",
            label,
            v.len(),
            opt_secs(median(&next)),
            opt_secs(next.iter().max().copied()),
            if fresh.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{} / {}",
                    opt_secs(median(&fresh)),
                    opt_secs(fresh.iter().max().copied())
                )
            }
        );
    }
    if !takeover.is_empty() || takeover_missing > 0 {
        let _ = writeln!(
            out,
            "  lease takeover after SIGKILL: {} deliveries held by killed replicas, re-delivered \
             after median {} / max {} ({} never answered 2xx after the kill)",
            takeover.len() + takeover_missing,
            opt_secs(median(&takeover)),
            opt_secs(takeover.iter().max().copied()),
            takeover_missing
        );
    }
    let _ = writeln!(out, "replica and PostgreSQL faults in order:");
    for l in &fault_lines {
        let _ = writeln!(out, "{l}");
    }

    // --- the verdict ---------------------------------------------------------------------------
    let mut fail = |cond: bool, what: String| {
        if cond {
            failures.push(what);
        }
    };
    fail(events == 0, "no event was committed".into());
    fail(
        lost_total > 0,
        format!(
            "lost: {lost_total} ({})",
            lost.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    fail(
        order_violations > 0,
        format!("order violations: {order_violations}"),
    );
    fail(
        rolled_back_delivered > 0,
        format!("requests for rolled-back/uncommitted events: {rolled_back_delivered}"),
    );
    fail(
        rollback_present > 0,
        format!("rolled-back events present in outbox.events: {rollback_present}"),
    );
    fail(
        committed_missing > 0,
        format!("events whose COMMIT succeeded but are missing: {committed_missing}"),
    );
    fail(stuck > 0, format!("stuck after the drain: {stuck}"));
    fail(
        bad_signature > 0,
        format!("requests with an invalid signature: {bad_signature}"),
    );
    fail(
        id_mismatch > 0,
        format!("requests whose webhook-id is not the event's id: {id_mismatch}"),
    );
    fail(
        payload_mismatch > 0,
        format!("requests whose body is not the event's payload: {payload_mismatch}"),
    );
    fail(
        phantom > 0,
        format!("requests for unknown events: {phantom}"),
    );
    fail(
        misrouted > 0,
        format!("requests to endpoints not subscribed to the event: {misrouted}"),
    );
    fail(
        db_strangers > 0,
        format!("events in outbox.events nobody published: {db_strangers}"),
    );
    fail(
        seq_mismatch > 0,
        format!("resources whose committed seqs are not 1..seq: {seq_mismatch}"),
    );
    fail(
        lanes_off > 0,
        format!("lanes whose pending counter disagrees with their deliveries: {lanes_off}"),
    );
    fail(
        !unexpected.is_empty(),
        format!(
            "replica crashes (exits nobody asked for): {}",
            unexpected.len()
        ),
    );
    fail(
        !term_failures.is_empty(),
        format!("SIGTERM stops that did not exit 0: {}", term_failures.len()),
    );
    let _ = writeln!(
        out,
        "checks: lost {lost_total}, order violations {order_violations}, rolled-back delivered \
         {rolled_back_delivered}, stuck {stuck}, bad signatures {bad_signature}, misrouted \
         {misrouted}, phantom {phantom}, lane counters off {lanes_off}, receiver protocol errors \
         {protocol_errors}"
    );
    for r in &d.receivers {
        for why in lock(&r.protocol_error_examples).iter() {
            let _ = writeln!(out, "  {} could not parse a request: {why}", r.name);
        }
    }
    for e in &lost_examples {
        let _ = writeln!(out, "  lost: {e}");
    }
    for e in &order_examples {
        let _ = writeln!(out, "  order: {e}");
    }
    for e in unexpected.iter().chain(term_failures.iter()) {
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
    let pass = failures.is_empty();
    if pass {
        let _ = writeln!(out, "PASS");
    } else {
        let _ = writeln!(out, "FAIL:\n  {}", failures.join("\n  "));
    }
    Ok(Verdict {
        report: out,
        final_line: format!(
            "events={events} lost={lost_total} order_violations={order_violations} \
             duplicates={duplicates} faults={}",
            faults.len()
        ),
        pass,
    })
}

fn code_name(code: u16) -> &'static str {
    match code {
        200..=299 => "2xx",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
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
    use super::OrderChecker;

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
}
