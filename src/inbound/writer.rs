//! The group-commit writer: requests accepted by the listener are stored in batches, one
//! statement (so one transaction, one WAL flush) per batch, so throughput does not cost one
//! fsync per request.
//!
//! ```text
//!  connection tasks ──Job──► bounded queue ──► writer 1 ─┐  one INSERT … RETURNING per batch:
//!      (await reply)                      └──► writer 2 ─┤  raw requests + their events,
//!                ▲                                        │  ON CONFLICT (source, key) DO NOTHING
//!                └──────────── Stored / Duplicate / Err ◄─┘  reply only after COMMIT
//! ```
//!
//! Batching follows the load by itself: a writer takes the first waiting request and whatever
//! else is already queued behind it (up to [`MAX_BATCH`] requests or [`MAX_BATCH_BYTES`]);
//! while it commits, the next requests queue up for the other writer. An idle writer commits a
//! lone request at once, so low load pays no batching delay; under load batches grow to what
//! arrives during one commit (a millisecond or two with fsync on).
//!
//! A reply says `Stored` only when the statement's implicit transaction has committed:
//! tokio-postgres returns a query's rows after `ReadyForQuery`, which PostgreSQL sends after
//! the commit, and the statement sets `synchronous_commit = on` for itself, so "committed"
//! means flushed to disk whatever the server's default. Anything else (an error, a lost
//! connection, no answer within [`WRITE_TIMEOUT`]) is an `Err`, answered 503: a request is
//! never acknowledged unless it is stored. An `Err` may still have committed (the answer was
//! lost); the provider's retry is then a duplicate of its idempotency key and stores nothing.
//!
//! The batch statement sends no NOTIFY (see `sql/inbound/accept.sql`: a notifying transaction
//! holds a database-wide lock across its commit's WAL flush, which would serialise the writers'
//! commits). After a commit that stored something, the writer pokes [`waker`], which sends one
//! `NOTIFY outboxd_events` in a transaction of its own (asynchronously committed); pokes that
//! arrive while it is sending are merged into the next one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::request::Accepted;
use crate::metrics::names;
use crate::sql;

/// Requests in one batch at most.
pub(crate) const MAX_BATCH: usize = 512;
/// Body bytes in one batch at most (a batch always takes its first request, whatever size).
pub(crate) const MAX_BATCH_BYTES: usize = 8 << 20;
/// How long one batch may take before its requests are answered 503.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of storing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Stored, with its `outbox.inbound_requests.id`; its event is in the same transaction.
    New(i64),
    /// The source already has a request with this idempotency key: nothing new stored.
    Duplicate,
}

/// The batch was not (known to be) committed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("outboxd is shutting down")]
    Stopped,
}

/// One request waiting to be stored, and where its answer goes.
pub(crate) struct Job {
    pub req: Accepted,
    pub done: oneshot::Sender<Result<Stored, WriteError>>,
}

/// Runs one writer until the queue is closed and empty.
pub(crate) async fn writer(
    pool: super::Db,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    stored: Arc<Notify>,
) {
    loop {
        let batch = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut bytes = first.req.body.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(job) => {
                        bytes += job.req.body.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let t0 = Instant::now();
        let result = tokio::time::timeout(WRITE_TIMEOUT, store(&pool, &batch))
            .await
            .unwrap_or(Err(WriteError::Timeout(WRITE_TIMEOUT)));
        metrics::histogram!(names::INBOUND_COMMIT).record(t0.elapsed().as_secs_f64());
        metrics::histogram!(names::INBOUND_BATCH_SIZE).record(batch.len() as f64);
        match result {
            Ok(outcomes) => {
                if outcomes.iter().any(|o| matches!(o, Stored::New(_))) {
                    stored.notify_one();
                }
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.done.send(Ok(outcome));
                }
            }
            Err(e) => {
                crate::metrics::db_error("inbound");
                tracing::warn!(error = %e, requests = batch.len(), "inbound: could not store a batch; answered 503");
                for job in batch {
                    let _ = job.done.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Wakes the routers (every replica's, through `NOTIFY outboxd_events`) after writers stored
/// new events, until `shutdown`. A failed NOTIFY wakes this replica's router in-process only;
/// the others poll.
pub(crate) async fn waker(
    pool: super::Db,
    stored: Arc<Notify>,
    router: Arc<crate::replica::Replica>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = stored.notified() => {}
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let sent = client.execute(sql::inbound::WAKE_ROUTER, &[]).await;
            if sent.is_err() {
                client.discard();
            }
            sent.map(drop).map_err(|e| e.to_string())
        };
        let sent = tokio::time::timeout(WRITE_TIMEOUT, sent)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {WRITE_TIMEOUT:?}")));
        if let Err(e) = sent {
            tracing::debug!(error = %e, "inbound: could not NOTIFY the routers; they poll");
            router.events_ready.notify_one();
        }
    }
}

/// Stores a batch in one statement; the outcome of each request, in batch order.
async fn store(pool: &super::Db, batch: &[Job]) -> Result<Vec<Stored>, WriteError> {
    let unavailable = |e: &dyn std::fmt::Display| WriteError::Unavailable(e.to_string());
    let client = pool.get().await.map_err(|e| unavailable(&e))?;
    let rows = async {
        let reqs: Vec<&Accepted> = batch.iter().map(|j| &j.req).collect();
        let col = |f: fn(&Accepted) -> Option<&str>| -> Vec<Option<&str>> {
            reqs.iter().map(|r| f(r)).collect()
        };
        let source = col(|r| Some(r.source.as_str()));
        let method = col(|r| Some(r.method.as_str()));
        let path = col(|r| Some(r.path.as_str()));
        let query = col(|r| r.query.as_deref());
        let headers = col(|r| Some(r.headers.as_str()));
        let content_type = col(|r| r.content_type.as_deref());
        let body: Vec<&[u8]> = reqs.iter().map(|r| &r.body[..]).collect();
        let idempotency_key = col(|r| r.idempotency_key.as_deref());
        let event_type = col(|r| Some(r.event_type.as_str()));
        let resource_key = col(|r| r.resource_key.as_deref());
        let tenant_id = col(|r| r.tenant_id.as_deref());
        let peer = col(|r| r.peer.as_deref());
        client
            .query(
                sql::inbound::ACCEPT,
                &[
                    &source,
                    &method,
                    &path,
                    &query,
                    &headers,
                    &content_type,
                    &body,
                    &idempotency_key,
                    &event_type,
                    &resource_key,
                    &tenant_id,
                    &peer,
                ],
            )
            .await
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            // The connection may be broken (or mid-statement): never hand it out again.
            client.discard();
            return Err(unavailable(&e));
        }
    };
    if rows.len() != batch.len() {
        return Err(WriteError::Unavailable(format!(
            "the batch statement returned {} rows for {} requests",
            rows.len(),
            batch.len()
        )));
    }
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get("id").map_err(|e| unavailable(&e))?;
            let stored: bool = r.try_get("stored").map_err(|e| unavailable(&e))?;
            Ok(if stored {
                Stored::New(id)
            } else {
                Stored::Duplicate
            })
        })
        .collect()
}
