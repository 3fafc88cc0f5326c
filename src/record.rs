//! Recording: the recorder task collects workers' outcomes and writes them to Postgres in
//! batches, one short transaction per batch (never across an HTTP call). In that transaction:
//! 1. the lanes of finishing lane heads are locked (key order, like the router);
//! 2. each delivery gets its new state (succeeded / pending with next_attempt_at / dead) if
//!    it is still leased under the same claim, and finished heads promote their lane's next
//!    delivery (`sql/engine/record_complete.sql`);
//! 3. one `outbox.attempts` row per attempt is inserted;
//! 4. endpoints that answered 410 Gone are disabled.
//!
//! **Hot lane hand-off.** A lane's next delivery can only start once its head is recorded.
//! Left to the claimer, one event of a busy resource key costs a whole deliver → record →
//! claim round. Instead, step 2 leases the promoted delivery to this replica at once when
//! [`handoff_quota`] allows it (the same limits as a claim: the endpoint's free `max_in_flight`
//! slots, no rate limit, a closed circuit, the replica's concurrency), and after the commit
//! the claimer starts its worker straight away. The lease is an ordinary one (claim_count + 1,
//! `lease_until`): if this replica dies first, it expires and is rescued like any other. The
//! slots are reserved in [`crate::replica::Capacity`] before the transaction, so the claimer
//! cannot hand them out twice meanwhile.
//!
//! A batch that fails to commit is retried (its outcomes stay in memory, bounded by the
//! replica's concurrency) until it commits; only then is its capacity freed. Meanwhile the
//! replica is not ready and its claimer starts nothing new (`crate::readiness`): if the
//! writes fail for longer than the lease, those deliveries are sent again by whichever
//! replica takes them over, and that is logged and counted
//! (`outboxd_outcomes_after_lease_total`), never silent.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;

use crate::circuit::Breakers;
use crate::db::{Conn, DbError};
use crate::delivery::{Claimed, EXCERPT_LIMIT, Outcome};
use crate::readiness::Task;
use crate::replica::{Capacity, Replica};
use crate::retry::{DeadReason, Decision};
use crate::sql;

/// Outcomes written per transaction at most.
const MAX_BATCH: usize = 1000;

/// One finished attempt, waiting to be written.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    pub delivery_id: i64,
    pub claim_count: i32,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
    pub event_id: String,
    /// The attempt number: the delivery's claim number (unique per delivery).
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub outcome: Outcome,
    pub decision: Decision,
}

/// What a batch write did.
#[derive(Debug, Default)]
pub(crate) struct RecordStats {
    pub applied: i64,
    pub promoted: i64,
    /// Promoted deliveries leased to this replica by the same transaction (hot lane
    /// hand-off): to be sent now.
    pub handed_off: Vec<Claimed>,
}

/// Which endpoints may take hand-offs in a batch, and how many each, with the lease to give
/// them ([`handoff_quota`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct HandOff {
    pub endpoints: Vec<i64>,
    pub counts: Vec<i32>,
    pub lease: Duration,
}

impl HandOff {
    fn slots(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.endpoints
            .iter()
            .zip(&self.counts)
            .map(|(&ep, &n)| (ep, n.max(0) as u32))
    }
}

/// How many of a batch's finishing lane heads may lease their lane's next delivery to this
/// replica right away, per endpoint: what a claim would allow now. `max_in_flight(ep)` is the
/// endpoint's limit, `None` when it takes no hand-offs (not in the catalog, disabled, or
/// rate-limited: pacing stays with the claimer). An endpoint whose circuit is not closed gets
/// none; the others get their free slots (the batch's requests are answered already), and
/// all of them together at most what `concurrency` leaves once the batch is recorded.
/// Endpoints that answered 410 Gone in this batch get none. Pure.
pub(crate) fn handoff_quota(
    batch: &[Completed],
    max_in_flight: impl Fn(i64) -> Option<u32>,
    capacity: &Capacity,
    breakers: &Breakers,
    concurrency: usize,
    now: Instant,
) -> Vec<(i64, u32)> {
    let gone: HashSet<i64> = batch
        .iter()
        .filter(|c| c.outcome.is_gone())
        .map(|c| c.endpoint_id)
        .collect();
    let mut finishing: BTreeMap<i64, u32> = BTreeMap::new();
    for c in batch {
        if c.lane_key.is_some()
            && !matches!(c.decision, Decision::Retry { .. })
            && !gone.contains(&c.endpoint_id)
        {
            *finishing.entry(c.endpoint_id).or_insert(0) += 1;
        }
    }
    if finishing.is_empty() {
        return Vec::new();
    }
    let not_closed: HashSet<i64> = breakers.not_closed(now).map(|(ep, _)| ep).collect();
    let mut budget = concurrency.saturating_sub(capacity.total().saturating_sub(batch.len()));
    let mut out = Vec::new();
    for (ep, lanes) in finishing {
        if budget == 0 {
            break;
        }
        if not_closed.contains(&ep) {
            continue;
        }
        let Some(limit) = max_in_flight(ep) else {
            continue;
        };
        let n = lanes
            .min(limit.saturating_sub(capacity.in_flight(ep)))
            .min(budget.min(u32::MAX as usize) as u32);
        if n > 0 {
            budget -= n as usize;
            out.push((ep, n));
        }
    }
    out
}

/// `outbox.attempts.error_message` is cut at this many bytes.
const MESSAGE_MAX: usize = 2048;

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// PostgreSQL text cannot hold NUL bytes.
fn clean(s: &str, max: usize) -> String {
    truncate(s, max).replace('\0', "\u{FFFD}")
}

/// The recorder: batches outcomes into one transaction each, retrying on database errors
/// (outcomes are kept until written), then frees their capacity and wakes the claimer. Ends
/// when every worker's sender is dropped and everything received is written.
/// Deliveries handed off by a committed batch go to the claimer through `handoff`, which
/// starts their workers; once it stops listening (shutdown), no more are handed off.
pub(crate) async fn recorder(
    replica: Arc<Replica>,
    mut rx: mpsc::Receiver<Completed>,
    handoff: mpsc::UnboundedSender<Vec<Claimed>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(50);
        let mut handed_off: Vec<Claimed> = Vec::new();
        loop {
            let quota = reserve_handoffs(&replica, &batch, &handoff);
            let result = match replica.db().await {
                Ok(client) => record(&client, &batch, &replica.config.replica_id, &quota)
                    .await
                    .map_err(DbError::from),
                Err(e) => Err(e),
            };
            {
                let mut cap = replica.capacity();
                for (ep, n) in quota.slots() {
                    cap.unreserve(ep, n);
                }
                if let Ok(stats) = &result {
                    cap.recorded(batch.iter().map(|c| c.delivery_id));
                    for c in &stats.handed_off {
                        cap.claimed(c.id, c.endpoint_id);
                    }
                }
            }
            match result {
                Ok(mut stats) => {
                    std::mem::swap(&mut handed_off, &mut stats.handed_off);
                    replica.readiness.ok(Task::Recorder, Instant::now());
                    let stale = batch.len() - (stats.applied as usize).min(batch.len());
                    if stale > 0 {
                        // Their leases had expired and been taken over (a stalled replica, or
                        // writes that failed for longer than the lease): the new holder
                        // records them, and those deliveries were or will be sent again.
                        metrics::counter!(crate::metrics::names::OUTCOMES_AFTER_LEASE)
                            .increment(stale as u64);
                        tracing::warn!(
                            stale,
                            "outcomes arrived after their lease ran out; those deliveries are \
                             sent again by whoever holds them now (same webhook-id)"
                        );
                    }
                    if stats.promoted > 0 {
                        tracing::trace!(
                            promoted = stats.promoted,
                            handed_off = handed_off.len(),
                            "lanes handed over"
                        );
                    }
                    break;
                }
                Err(e) => {
                    crate::metrics::db_error("record");
                    let why = replica.failed(Task::Recorder, &e).await;
                    tracing::error!(
                        error = %why,
                        batch = batch.len(),
                        "recording outcomes failed; retrying, and claiming nothing new until \
                         they are written (their deliveries are sent again if the lease runs \
                         out first)"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // The claimer has something to do if this batch freed capacity beyond what its
        // hand-offs took, or left due work behind (a promotion not handed off, a retry):
        // a batch of hot lanes that only handed off wakes no claim.
        let wake = batch.len() > handed_off.len() || handed_off.is_empty();
        batch.clear();
        if !handed_off.is_empty() {
            metrics::counter!(crate::metrics::names::LANE_HANDOFFS)
                .increment(handed_off.len() as u64);
            if let Err(mpsc::error::SendError(back)) = handoff.send(handed_off) {
                give_back(&replica, back).await;
            }
        }
        if wake {
            replica.work_ready.notify_one();
        }
    }
}

/// The hand-offs the next write of `batch` may make, their slots reserved in the replica's
/// capacity (the caller takes the reservation back after the write). None while the claimer
/// no longer takes them (shutting down) or the recorder is failing (then nothing new starts).
fn reserve_handoffs(
    replica: &Replica,
    batch: &[Completed],
    handoff: &mpsc::UnboundedSender<Vec<Claimed>>,
) -> HandOff {
    let mut h = HandOff {
        lease: replica.config.lease,
        ..HandOff::default()
    };
    if handoff.is_closed() || replica.readiness.is_failing(Task::Recorder) {
        return h;
    }
    let catalog = replica.catalog.get();
    let limits = |ep: i64| {
        catalog
            .endpoint(ep)
            .filter(|e| e.enabled && e.rate_limit.is_none())
            .map(|e| e.max_in_flight)
    };
    let mut cap = replica.capacity();
    let quota = {
        let breakers = replica.breakers();
        handoff_quota(
            batch,
            limits,
            &cap,
            &breakers,
            replica.config.concurrency,
            Instant::now(),
        )
    };
    for (ep, n) in quota {
        cap.reserve(ep, n);
        h.endpoints.push(ep);
        h.counts.push(n.min(i32::MAX as u32) as i32);
    }
    h
}

/// Hand-offs the claimer can no longer start (it stopped between our check and the commit):
/// their leases are given back at once, or expire.
async fn give_back(replica: &Replica, handed: Vec<Claimed>) {
    let ids: Vec<i64> = handed.iter().map(|c| c.id).collect();
    {
        let mut cap = replica.capacity();
        for c in &handed {
            cap.answered(c.id, c.endpoint_id);
        }
        cap.recorded(ids.iter().copied());
    }
    let released = async {
        let client = replica.db().await?;
        client
            .execute(sql::RELEASE_LEASES, &[&replica.config.replica_id, &ids])
            .await?;
        Ok::<_, DbError>(())
    };
    if let Err(e) = released.await {
        crate::metrics::db_error("record");
        tracing::warn!(error = %e, count = ids.len(), "could not give back handed-off leases; they will expire");
    }
}

/// The record transaction's first message. Its statements run with their generic plans: with
/// a custom plan per call (what PostgreSQL picked for the lane lock, whose `unnest` of one
/// lane looks cheaper than the generic plan's ten), planning cost more than running it.
/// A generic plan is made once per connection, often while the tables are still small (a
/// fresh install, the bench), and kept until an ANALYZE: every statement here touches a
/// batch of rows by key, so sequential scans are off, and the statements probe by primary
/// key in ways no estimate can turn into a scan (`record_lock_lanes.sql`,
/// `record_complete.sql`). Before, the lane lock read all of `outbox.lanes` and the update
/// all of `deliveries_leased` (an index V20 dropped) on every batch (BENCHMARKS.md, issue
/// 16 round 4).
const BEGIN: &str =
    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

/// Writes a batch of outcomes in one transaction, sent in one round trip: `BEGIN`, the
/// statements below and `COMMIT` are pipelined ([`crate::db::Conn::pipeline`]). On a hot lane the
/// record transaction is on the critical path of every event (answer → recorded → next one
/// sent), and each round trip of a six-statement transaction waited for both processes to
/// be scheduled again. PostgreSQL still runs the statements one after the other, each with a
/// snapshot taken after the previous one finished.
pub(crate) async fn record(
    client: &Conn,
    batch: &[Completed],
    replica_id: &str,
    handoff: &HandOff,
) -> Result<RecordStats, tokio_postgres::Error> {
    // Hand-offs are leased from the transaction's now(), a little after this instant.
    let lease_start = Instant::now();

    // 1. The lanes whose head is finishing, locked in key order. This must be its own
    //    statement: in READ COMMITTED the next statement takes its snapshot after the lock,
    //    so it sees every delivery the router committed to these lanes before we got them.
    //    Folded into RECORD_COMPLETE (one snapshot, taken before the lock wait), the lane
    //    counter would be read at its newest version but the promotion could miss a held
    //    delivery committed meanwhile, and that lane would stall for good. (Pipelining keeps
    //    this: the server binds the next statement only once the lock statement is done.)
    let mut lanes: Vec<(i64, &str)> = batch
        .iter()
        .filter(|c| !matches!(c.decision, Decision::Retry { .. }))
        .filter_map(|c| c.lane_key.as_deref().map(|k| (c.endpoint_id, k)))
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    let (lane_eps, lane_keys): (Vec<i64>, Vec<&str>) = lanes.into_iter().unzip();

    // 2. New states, lane hand-over (and the handed-off deliveries' claim columns).
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut claims = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut next_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut statuses: Vec<Option<i32>> = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    // attempts columns
    let mut a_event = Vec::with_capacity(n);
    let mut a_endpoint = Vec::with_capacity(n);
    let mut a_attempt = Vec::with_capacity(n);
    let mut a_started = Vec::with_capacity(n);
    let mut a_duration = Vec::with_capacity(n);
    let mut a_kind: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut a_excerpt: Vec<Option<String>> = Vec::with_capacity(n);
    let mut gone: Vec<i64> = Vec::new();
    for c in batch {
        ids.push(c.delivery_id);
        claims.push(c.claim_count);
        let (state, at) = match &c.decision {
            Decision::Succeeded => ("succeeded", None),
            Decision::Retry { at } => ("pending", Some(*at)),
            Decision::Dead { .. } => ("dead", None),
        };
        states.push(state);
        next_at.push(at);
        statuses.push(c.outcome.status().map(i32::from));
        let (kind, error, excerpt) = match &c.outcome {
            Outcome::Delivered { excerpt, .. } => (None, None, Some(clean(excerpt, EXCERPT_LIMIT))),
            Outcome::Failed {
                kind,
                message,
                excerpt,
                ..
            } => {
                let mut msg = clean(message, MESSAGE_MAX);
                if let Decision::Dead { reason } = &c.decision {
                    msg.push_str(match reason {
                        DeadReason::MaxAge => " (dead: event older than the max age)",
                        DeadReason::Permanent => " (dead: retrying cannot fix this)",
                    });
                }
                (
                    Some(kind.as_str()),
                    Some(msg),
                    excerpt.as_deref().map(|e| clean(e, EXCERPT_LIMIT)),
                )
            }
        };
        errors.push(error);
        a_kind.push(kind);
        a_excerpt.push(excerpt);
        a_event.push(c.event_id.as_str());
        a_endpoint.push(c.endpoint_id);
        a_attempt.push(c.attempt);
        a_started.push(c.started_at);
        a_duration.push(c.duration_ms);
        if c.outcome.is_gone() {
            gone.push(c.endpoint_id);
        }
    }
    gone.sort_unstable();
    gone.dedup();
    let gone_message = format!("receiver answered 410 Gone at {}", Utc::now().to_rfc3339());

    let p = client
        .pipeline(&[
            sql::RECORD_LOCK_LANES,
            sql::RECORD_COMPLETE,
            sql::RECORD_ATTEMPTS,
            sql::RECORD_GONE,
        ])
        .await?;
    let lock = async {
        if !lane_eps.is_empty() {
            p.query(sql::RECORD_LOCK_LANES, &[&lane_eps, &lane_keys])
                .await?;
        }
        Ok(())
    };
    let lease_secs = handoff.lease.as_secs_f64();
    let complete_params: [&(dyn ToSql + Sync); 10] = [
        &ids,
        &claims,
        &states,
        &next_at,
        &statuses,
        &errors,
        &handoff.endpoints,
        &handoff.counts,
        &lease_secs,
        &replica_id,
    ];
    let complete = p.query(sql::RECORD_COMPLETE, &complete_params);
    // 3. The attempts.
    let attempts_params: [&(dyn ToSql + Sync); 12] = [
        &ids,
        &a_event,
        &a_endpoint,
        &a_attempt,
        &a_started,
        &a_duration,
        &statuses,
        &a_kind,
        &errors,
        &a_excerpt,
        &next_at,
        &replica_id,
    ];
    let attempts = p.execute(sql::RECORD_ATTEMPTS, &attempts_params);
    // 4. 410 Gone.
    let gone = async {
        if !gone.is_empty() {
            p.execute(sql::RECORD_GONE, &[&gone, &gone_message]).await?;
        }
        Ok(())
    };
    let (_, _, rows, _, _, _) = futures_util::try_join!(
        p.simple(BEGIN),
        lock,
        complete,
        attempts,
        gone,
        p.simple("COMMIT"),
    )?;

    let Some(first) = rows.first() else {
        // The statement always returns a row; none means it did not run as written.
        return Ok(RecordStats::default());
    };
    let mut handed_off = Vec::new();
    for r in &rows {
        if r.try_get::<_, Option<i64>>("id")?.is_some() {
            handed_off.push(Claimed::from_row(r, lease_start));
        }
    }
    Ok(RecordStats {
        applied: first.try_get("applied")?,
        promoted: first.try_get("promoted")?,
        handed_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::ErrorKind;

    fn done(
        delivery_id: i64,
        endpoint_id: i64,
        lane: Option<&str>,
        decision: Decision,
    ) -> Completed {
        Completed {
            delivery_id,
            claim_count: 1,
            endpoint_id,
            lane_key: lane.map(str::to_owned),
            event_id: format!("evt_{delivery_id}"),
            attempt: 1,
            started_at: Utc::now(),
            duration_ms: 1,
            outcome: Outcome::Delivered {
                status: 200,
                excerpt: String::new(),
            },
            decision,
        }
    }

    fn gone(delivery_id: i64, endpoint_id: i64, lane: &str) -> Completed {
        let mut c = done(
            delivery_id,
            endpoint_id,
            Some(lane),
            Decision::Dead {
                reason: DeadReason::Permanent,
            },
        );
        c.outcome = Outcome::Failed {
            kind: ErrorKind::Status,
            status: Some(410),
            message: "gone".into(),
            excerpt: None,
            retry_after: None,
        };
        c
    }

    /// Endpoints 1 and 2: 4 slots; 3: none (not in the catalog, disabled or rate-limited).
    fn limits(ep: i64) -> Option<u32> {
        (ep != 3).then_some(4)
    }

    /// The batch's deliveries are claimed and answered, as when the recorder gets them.
    fn capacity_after(batch: &[Completed]) -> Capacity {
        let mut cap = Capacity::default();
        for c in batch {
            cap.claimed(c.delivery_id, c.endpoint_id);
            cap.answered(c.delivery_id, c.endpoint_id);
        }
        cap
    }

    fn breakers() -> Breakers {
        Breakers::new(1, Duration::from_secs(30))
    }

    #[test]
    fn only_finished_lane_heads_hand_off_within_the_endpoints_free_slots() {
        let now = Instant::now();
        let batch = [
            done(1, 1, Some("a"), Decision::Succeeded),
            done(
                2,
                1,
                Some("b"),
                Decision::Dead {
                    reason: DeadReason::MaxAge,
                },
            ),
            // A retry keeps its lane; an unordered delivery has none.
            done(3, 1, Some("c"), Decision::Retry { at: Utc::now() }),
            done(4, 1, None, Decision::Succeeded),
            done(5, 2, Some("a"), Decision::Succeeded),
            done(6, 3, Some("a"), Decision::Succeeded),
        ];
        let mut cap = capacity_after(&batch);
        assert_eq!(
            handoff_quota(&batch, limits, &cap, &breakers(), 100, now),
            [(1, 2), (2, 1)]
        );
        // Endpoint 1 has 3 of its 4 slots busy with other requests: one hand-off.
        for id in 10..13 {
            cap.claimed(id, 1);
        }
        assert_eq!(
            handoff_quota(&batch, limits, &cap, &breakers(), 100, now),
            [(1, 1), (2, 1)]
        );
    }

    #[test]
    fn open_circuits_gone_endpoints_and_a_full_replica_take_no_hand_offs() {
        let now = Instant::now();
        let batch = [
            done(1, 1, Some("a"), Decision::Succeeded),
            done(2, 2, Some("a"), Decision::Succeeded),
            gone(3, 2, "b"),
        ];
        let cap = capacity_after(&batch);
        // 410 Gone from endpoint 2: it is being disabled.
        assert_eq!(
            handoff_quota(&batch, limits, &cap, &breakers(), 100, now),
            [(1, 1)]
        );
        let mut b = breakers();
        b.record(1, false, now);
        assert!(handoff_quota(&batch, limits, &cap, &b, 100, now).is_empty());
        // Concurrency 3 with 3 deliveries being recorded and one more claimed: 2 free.
        let two = [
            done(1, 1, Some("a"), Decision::Succeeded),
            done(2, 1, Some("b"), Decision::Succeeded),
            done(3, 2, Some("a"), Decision::Succeeded),
        ];
        let mut cap = capacity_after(&two);
        assert_eq!(
            handoff_quota(&two, limits, &cap, &breakers(), 3, now),
            [(1, 2), (2, 1)]
        );
        cap.claimed(9, 2);
        assert_eq!(
            handoff_quota(&two, limits, &cap, &breakers(), 3, now),
            [(1, 2)]
        );
        cap.claimed(10, 2);
        cap.claimed(11, 2);
        assert!(handoff_quota(&two, limits, &cap, &breakers(), 3, now).is_empty());
    }

    /// The record transaction's generic plans are made once per connection, often on tables
    /// that are still empty: they must probe by key anyway, never read a whole table or
    /// index. On a fresh database (what a new install and the bench start with), the plans of
    /// its statements under its own settings ([`BEGIN`]) contain no sequential or bitmap scan
    /// (before: a sequential scan of `outbox.lanes` and a bitmap scan of `deliveries_leased`
    /// per batch, BENCHMARKS.md issue 16 round 4).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_record_statements_probe_by_key_even_when_planned_on_empty_tables() {
        let db = testkit::fresh_db().await;
        let mut c = db.client().await;
        let tx = c.transaction().await.unwrap();
        tx.batch_execute(BEGIN.trim_start_matches("BEGIN;"))
            .await
            .unwrap();
        // (statement, parameter types, arguments)
        let statements = [
            (sql::RECORD_LOCK_LANES, "bigint[], text[]", "'{1}', '{a}'"),
            (
                sql::RECORD_COMPLETE,
                "bigint[], int[], text[], timestamptz[], int[], text[], bigint[], int[], float8, text",
                "'{1}', '{1}', '{succeeded}', '{NULL}', '{200}', '{NULL}', '{1}', '{1}', 30, 'r'",
            ),
        ];
        for (i, (sql, types, args)) in statements.iter().enumerate() {
            tx.batch_execute(&format!("PREPARE s{i}({types}) AS {sql}"))
                .await
                .unwrap();
            let plan: String = tx
                .simple_query(&format!("EXPLAIN EXECUTE s{i}({args})"))
                .await
                .unwrap()
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        r.get(0).map(|l| l.to_owned() + "\n")
                    }
                    _ => None,
                })
                .collect();
            for scan in ["Seq Scan", "Bitmap"] {
                assert!(!plan.contains(scan), "{scan} in\n{plan}");
            }
        }
    }
}
