//! Recording: the recorder task collects workers' outcomes and writes them to Postgres in
//! batches, one short transaction per batch (never across an HTTP call). In that transaction:
//! 1. the lanes of finishing lane heads are locked (key order, like the router);
//! 2. each delivery gets its new state (succeeded / pending with next_attempt_at / dead) if
//!    it is still leased under the same claim, and finished heads promote their lane's next
//!    delivery (`sql/engine/record_complete.sql`);
//! 3. one `outbox.attempts` row per attempt is inserted;
//! 4. endpoints that answered 410 Gone are disabled.
//!
//! A batch that fails to commit is retried (its outcomes stay in memory, bounded by the
//! replica's concurrency) until it commits; only then is its capacity freed. Meanwhile the
//! replica is not ready and its claimer starts nothing new (`crate::readiness`): if the
//! writes fail for longer than the lease, those deliveries are sent again by whichever
//! replica takes them over, and that is logged and counted
//! (`outboxd_outcomes_after_lease_total`), never silent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::db::{Conn, DbError};
use crate::delivery::{EXCERPT_LIMIT, Outcome};
use crate::readiness::Task;
use crate::replica::Replica;
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
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RecordStats {
    pub applied: i64,
    pub promoted: i64,
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
pub(crate) async fn recorder(replica: Arc<Replica>, mut rx: mpsc::Receiver<Completed>) {
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
        loop {
            let result = match replica.db().await {
                Ok(mut client) => record(&mut client, &batch, &replica.config.replica_id)
                    .await
                    .map_err(DbError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(stats) => {
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
                        tracing::trace!(promoted = stats.promoted, "lanes handed over");
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
        replica
            .capacity()
            .recorded(batch.iter().map(|c| c.delivery_id));
        batch.clear();
        replica.work_ready.notify_one();
    }
}

/// Writes a batch of outcomes in one transaction.
pub(crate) async fn record(
    client: &mut Conn,
    batch: &[Completed],
    replica_id: &str,
) -> Result<RecordStats, tokio_postgres::Error> {
    let tx = client.transaction().await?;

    // 1. Lock the lanes whose head is finishing, in key order. This must be its own
    //    statement: in READ COMMITTED the next statement takes its snapshot after the lock,
    //    so it sees every delivery the router committed to these lanes before we got them.
    //    Folded into RECORD_COMPLETE (one snapshot, taken before the lock wait), the lane
    //    counter would be read at its newest version but the promotion could miss a held
    //    delivery committed meanwhile, and that lane would stall for good.
    let mut lanes: Vec<(i64, &str)> = batch
        .iter()
        .filter(|c| !matches!(c.decision, Decision::Retry { .. }))
        .filter_map(|c| c.lane_key.as_deref().map(|k| (c.endpoint_id, k)))
        .collect();
    lanes.sort_unstable();
    lanes.dedup();
    if !lanes.is_empty() {
        let (eps, keys): (Vec<i64>, Vec<&str>) = lanes.into_iter().unzip();
        tx.query(sql::RECORD_LOCK_LANES, &[&eps, &keys]).await?;
    }

    // 2. New states, lane hand-over.
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
    let row = tx
        .query_one(
            sql::RECORD_COMPLETE,
            &[&ids, &claims, &states, &next_at, &statuses, &errors],
        )
        .await?;
    let stats = RecordStats {
        applied: row.get(0),
        promoted: row.get(1),
    };

    // 3. The attempts.
    tx.execute(
        sql::RECORD_ATTEMPTS,
        &[
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
        ],
    )
    .await?;

    // 4. 410 Gone.
    if !gone.is_empty() {
        gone.sort_unstable();
        gone.dedup();
        tx.execute(
            sql::RECORD_GONE,
            &[
                &gone,
                &format!("receiver answered 410 Gone at {}", Utc::now().to_rfc3339()),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(stats)
}
