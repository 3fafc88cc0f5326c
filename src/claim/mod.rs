//! Claiming: the claimer task leases due deliveries within this replica's capacity and hands
//! each one to a worker ([`crate::worker`]); outcomes go to the recorder
//! ([`crate::record`]).
//!
//! * [`policy`]: how much of each endpoint may be claimed now (in-flight slots, rate limits,
//!   circuit breakers). Pure, unit-tested.
//! * [`query`]: the claim statement itself (`sql/engine/claim.sql`, `FOR UPDATE SKIP LOCKED`).
//! * This module: the loop. It claims as long as there is due work and free capacity, waits
//!   for a wake-up otherwise, reconciles after a claim whose answer was lost, and on shutdown
//!   drains its workers or gives their leases back.

pub(crate) mod policy;
pub(crate) mod query;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::delivery::Claimed;
use crate::readiness::Task;
use crate::record::Completed;
use crate::replica::Replica;
use crate::sql;
use policy::{EndpointLimits, claim_request};
use query::{ClaimRequest, claim, next_cursor};

/// The claimer: runs until `shutdown`, then drains (or, after the grace period, aborts and
/// releases) its workers. Dropping `done_tx` at the end lets the recorder finish. It also
/// starts the workers of deliveries the recorder handed off (`handed`: already leased and
/// counted, see [`crate::record`]), at once, even while a claim is running; at shutdown it
/// stops taking them and drains the ones already handed over with the rest.
pub(crate) async fn claimer(
    replica: Arc<Replica>,
    done_tx: mpsc::Sender<Completed>,
    mut handed: mpsc::UnboundedReceiver<Vec<Claimed>>,
    shutdown: CancellationToken,
) {
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut backoff = Backoff::new();
    let mut cursor = 0i64;
    // A claim failed: it may have committed without us seeing its rows.
    let mut unsure = false;
    while !shutdown.is_cancelled() {
        while workers.try_join_next().is_some() {}
        while let Ok(h) = handed.try_recv() {
            spawn_workers(&replica, h, &done_tx, &mut workers);
        }
        // Outcomes that cannot be written keep their deliveries leased until the lease runs
        // out and they are sent again: start nothing new meanwhile.
        let free = if replica.readiness.is_failing(Task::Recorder) {
            0
        } else {
            replica.capacity().free(replica.config.concurrency)
        };
        if free == 0 {
            replica.readiness.ok(Task::Claimer, Instant::now());
            if wait_for_work(
                &replica,
                &shutdown,
                replica.config.poll_interval,
                &mut handed,
                &done_tx,
                &mut workers,
            )
            .await
            {
                break;
            }
            continue;
        }
        if unsure {
            match release_unknown_leases(&replica).await {
                Ok(n) => {
                    unsure = false;
                    if n > 0 {
                        tracing::warn!(
                            released = n,
                            "gave back deliveries claimed by a claim whose answer was lost"
                        );
                    }
                }
                Err(e) => {
                    let why = replica.failed(Task::Claimer, &e).await;
                    tracing::warn!(error = %why, "database still unavailable");
                    if backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let req = request(&replica, free.min(replica.config.claim_batch), cursor);
        // Hand-offs arriving meanwhile start at once: that is their point.
        let claiming = claim_with_pool(&replica, &req);
        tokio::pin!(claiming);
        let result = loop {
            tokio::select! {
                r = &mut claiming => break r,
                Some(h) = handed.recv() => spawn_workers(&replica, h, &done_tx, &mut workers),
            }
        };
        let claimed = match result {
            Ok(c) => {
                replica.readiness.ok(Task::Claimer, Instant::now());
                backoff.reset();
                c
            }
            Err(e) => {
                unsure = true;
                crate::metrics::db_error("claim");
                let why = replica.failed(Task::Claimer, &e).await;
                tracing::warn!(error = %why, "claiming failed; retrying");
                if backoff.wait(&shutdown).await {
                    break;
                }
                continue;
            }
        };
        let got = claimed.len();
        cursor = next_cursor(cursor, &claimed);
        start_workers(&replica, claimed, &done_tx, &mut workers);
        // Nothing claimable (no due work, or every endpoint with work is at its limit): wait
        // for new work, freed capacity, or the poll interval. Otherwise claim again at once.
        if got == 0
            && wait_for_work(
                &replica,
                &shutdown,
                replica.config.poll_interval,
                &mut handed,
                &done_tx,
                &mut workers,
            )
            .await
        {
            break;
        }
    }
    // The recorder hands off nothing more (and gives back what it can no longer hand over);
    // what was handed over already runs and is drained like the rest.
    handed.close();
    while let Ok(h) = handed.try_recv() {
        spawn_workers(&replica, h, &done_tx, &mut workers);
    }
    drain(&replica, workers).await;
}

/// The claim request from what this replica has in flight (see [`policy`]).
fn request(replica: &Replica, limit: usize, cursor: i64) -> ClaimRequest {
    let catalog = replica.catalog.get();
    let limits = |ep: i64| {
        catalog.endpoint(ep).map(|e| EndpointLimits {
            max_in_flight: e.max_in_flight,
            rate_limit: e.rate_limit,
        })
    };
    let capacity = replica.capacity();
    let pacer = replica.pacer();
    let breakers = replica.breakers();
    claim_request(
        limits,
        &capacity,
        &pacer,
        &breakers,
        limit,
        cursor,
        Instant::now(),
    )
}

/// Counts the claimed deliveries as in flight and spawns one worker each.
fn start_workers(
    replica: &Arc<Replica>,
    claimed: Vec<Claimed>,
    done_tx: &mpsc::Sender<Completed>,
    workers: &mut JoinSet<()>,
) {
    {
        let mut cap = replica.capacity();
        for c in &claimed {
            cap.claimed(c.id, c.endpoint_id);
        }
    }
    spawn_workers(replica, claimed, done_tx, workers);
}

/// One worker per delivery, already counted in the replica's capacity.
fn spawn_workers(
    replica: &Arc<Replica>,
    claimed: Vec<Claimed>,
    done_tx: &mpsc::Sender<Completed>,
    workers: &mut JoinSet<()>,
) {
    for c in claimed {
        let replica = replica.clone();
        let tx = done_tx.clone();
        workers.spawn(async move {
            let (id, endpoint_id) = (c.id, c.endpoint_id);
            let done = crate::worker::deliver(&replica, c).await;
            replica.capacity().answered(id, endpoint_id);
            // The recorder is gone only if the engine is stopping; the lease then expires and
            // the delivery is retried.
            let _ = tx.send(done).await;
        });
    }
}

/// Waits for new work, freed capacity or `poll`; true when shutting down. Deliveries the
/// recorder hands off meanwhile are started at once, and the wait goes on: a hand-off needs
/// no claim (the recorder wakes the claimer when its batch also left due work or free
/// capacity behind).
async fn wait_for_work(
    replica: &Arc<Replica>,
    shutdown: &CancellationToken,
    poll: Duration,
    handed: &mut mpsc::UnboundedReceiver<Vec<Claimed>>,
    done_tx: &mpsc::Sender<Completed>,
    workers: &mut JoinSet<()>,
) -> bool {
    let timeout = tokio::time::sleep(poll);
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return true,
            _ = replica.work_ready.notified() => return false,
            Some(h) = handed.recv() => spawn_workers(replica, h, done_tx, workers),
            _ = &mut timeout => return false,
        }
    }
}

/// Exponential backoff after database errors: 100 ms doubling up to 5 s.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Backoff(Self::FIRST)
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    /// Sleeps the current delay and doubles it; true when shutting down meanwhile.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(delay) => false,
        }
    }
}

/// After a claim whose answer was lost: gives back every lease of this replica that it does
/// not know it holds.
async fn release_unknown_leases(replica: &Replica) -> Result<u64, DbError> {
    let client = replica.db().await?;
    let held = replica.capacity().leased();
    Ok(client
        .execute(
            sql::RELEASE_UNKNOWN_LEASES,
            &[&replica.config.replica_id, &held],
        )
        .await?)
}

async fn claim_with_pool(replica: &Replica, req: &ClaimRequest) -> Result<Vec<Claimed>, DbError> {
    let client = replica.db().await?;
    Ok(claim(
        &client,
        req,
        replica.config.lease,
        &replica.config.replica_id,
    )
    .await?)
}

/// Graceful stop: wait for running attempts up to the grace period, then abort the rest and
/// give their leases back so another replica can take them at once.
async fn drain(replica: &Replica, mut workers: JoinSet<()>) {
    let deadline = tokio::time::Instant::now() + replica.config.shutdown_grace;
    while !workers.is_empty() {
        if tokio::time::timeout_at(deadline, workers.join_next())
            .await
            .is_err()
        {
            break;
        }
    }
    if workers.is_empty() {
        return;
    }
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let ids = replica.capacity().take_running();
    tracing::warn!(
        count = ids.len(),
        "grace period over: releasing unfinished deliveries"
    );
    let released = async {
        let client = replica.db().await?;
        client
            .execute(sql::RELEASE_LEASES, &[&replica.config.replica_id, &ids])
            .await?;
        Ok::<_, DbError>(())
    };
    if let Err(e) = released.await {
        tracing::warn!(error = %e, "could not release leases; they will expire");
    }
}
