//! Dispatching inside one replica: the claimer leases work within this replica's capacity,
//! one worker task per delivery makes the HTTP attempt, and the completer writes outcomes
//! in batches.
//!
//! Capacity is counted per replica, in two ways:
//! * `max_in_flight` per endpoint counts HTTP requests (claimed and not yet answered): that
//!   is what protects a receiver. The claim query enforces it, so a slow endpoint's backlog is
//!   never even claimed beyond its share. The slot frees as soon as the answer arrives.
//! * `concurrency` counts deliveries from claim until their outcome is committed, so a
//!   stalled database stalls claiming instead of piling up results in memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use rand::RngExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::circuit::{Breaker, CircuitState};
use crate::claim::{ClaimRequest, Claimed, claim};
use crate::delivery::http::WebhookRequest;
use crate::delivery::{ErrorKind, Outcome};
use crate::engine::Shared;
use crate::record::{Completed, record};
use crate::retry::Decision;
use crate::sql;

/// This replica's bookkeeping of work in flight.
#[derive(Debug, Default)]
pub struct Capacity {
    /// Deliveries claimed and not yet recorded.
    total: usize,
    /// HTTP requests claimed and not yet answered, per endpoint.
    per_endpoint: HashMap<i64, u32>,
    /// Deliveries whose HTTP attempt is running (released on shutdown if aborted).
    running: HashSet<i64>,
    /// Deliveries claimed and not yet recorded: what this replica knows it holds.
    leased: HashSet<i64>,
    breakers: HashMap<i64, Breaker>,
    /// Per-endpoint rate limit: the earliest time the next request may start.
    next_slot: HashMap<i64, Instant>,
}

impl Shared {
    pub(crate) fn capacity(&self) -> MutexGuard<'_, Capacity> {
        match self.capacity.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn release_endpoint_slot(cap: &mut Capacity, endpoint_id: i64) {
    if let Some(n) = cap.per_endpoint.get_mut(&endpoint_id) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            cap.per_endpoint.remove(&endpoint_id);
        }
    }
}

/// Builds the claim request from what is in flight and which circuits are open.
fn claim_request(shared: &Shared, limit: usize, cursor: i64) -> ClaimRequest {
    let catalog = shared.catalog.get();
    let cap = shared.capacity();
    let now = Instant::now();
    // Slots to treat as taken per endpoint (the claim grants max_in_flight minus this).
    let mut taken: HashMap<i64, u32> = cap
        .per_endpoint
        .iter()
        .filter(|&(_, &n)| n > 0)
        .map(|(&ep, &n)| (ep, n))
        .collect();
    let mut excluded: HashSet<i64> = HashSet::new();
    // Rate-limited endpoints: claim only what the rate allows in the next ~2 s, so workers
    // never wait long for a slot while their lease runs.
    for (&ep, &slot) in &cap.next_slot {
        let Some(e) = catalog.endpoint(ep) else {
            continue;
        };
        let Some(rate) = e.rate_limit else { continue };
        if slot > now + Duration::from_secs(1) {
            excluded.insert(ep);
            continue;
        }
        let allowed = ((rate * 2.0) as u32).clamp(1, e.max_in_flight);
        let busy = cap.per_endpoint.get(&ep).copied().unwrap_or(0);
        let t = taken.entry(ep).or_insert(0);
        *t = (*t).max(e.max_in_flight.saturating_sub(allowed).saturating_add(busy));
    }
    for (&ep, breaker) in &cap.breakers {
        match breaker.state(now) {
            CircuitState::Closed => {}
            CircuitState::Open => {
                excluded.insert(ep);
            }
            CircuitState::HalfOpen => {
                let busy = cap.per_endpoint.get(&ep).copied().unwrap_or(0);
                match catalog.endpoint(ep) {
                    // Exactly one probe: pretend all but one slot are taken.
                    Some(e) if busy == 0 => {
                        let t = taken.entry(ep).or_insert(0);
                        *t = (*t).max(e.max_in_flight.saturating_sub(1));
                    }
                    _ => {
                        excluded.insert(ep);
                    }
                }
            }
        }
    }
    let (busy_endpoints, busy_counts) = taken
        .into_iter()
        .map(|(ep, n)| (ep, n.min(i32::MAX as u32) as i32))
        .unzip();
    ClaimRequest {
        busy_endpoints,
        busy_counts,
        excluded_endpoints: excluded.into_iter().collect(),
        limit: limit as i64,
        cursor,
    }
}

/// The claimer: runs until `shutdown`, then drains (or, after the grace period, aborts and
/// releases) its workers. Dropping `done_tx` at the end lets the completer finish.
pub async fn claimer(
    shared: Arc<Shared>,
    done_tx: mpsc::Sender<Completed>,
    shutdown: CancellationToken,
) {
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    let mut cursor = 0i64;
    let mut unsure = false;
    while !shutdown.is_cancelled() {
        while workers.try_join_next().is_some() {}
        let free = shared
            .config
            .concurrency
            .saturating_sub(shared.capacity().total);
        if free == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = shared.work_ready.notified() => {}
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
            }
            continue;
        }
        let limit = free.min(shared.config.claim_batch);
        let req = claim_request(&shared, limit, cursor);
        if unsure {
            match release_unknown_leases(&shared).await {
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
                    tracing::warn!(error = %e, "database still unavailable");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let claimed = match claim_with_pool(&shared, &req).await {
            Ok(c) => {
                backoff = Duration::from_millis(100);
                c
            }
            Err(e) => {
                // The claim may have committed without us seeing its rows: reconcile first.
                unsure = true;
                metrics::counter!("outboxd_db_errors_total", "task" => "claim").increment(1);
                tracing::warn!(error = %e, "claiming failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let got = claimed.len();
        cursor = crate::claim::next_cursor(cursor, &claimed);
        {
            let mut cap = shared.capacity();
            for c in &claimed {
                cap.total += 1;
                cap.leased.insert(c.id);
                *cap.per_endpoint.entry(c.endpoint_id).or_insert(0) += 1;
                cap.running.insert(c.id);
            }
            metrics::gauge!("outboxd_in_flight_deliveries").set(cap.total as f64);
        }
        for c in claimed {
            let shared = shared.clone();
            let tx = done_tx.clone();
            workers.spawn(async move {
                let (id, endpoint_id) = (c.id, c.endpoint_id);
                let done = deliver(&shared, c).await;
                {
                    let mut cap = shared.capacity();
                    cap.running.remove(&id);
                    release_endpoint_slot(&mut cap, endpoint_id);
                }
                // The completer is gone only if the engine is stopping; the lease then
                // expires and the delivery is retried.
                let _ = tx.send(done).await;
            });
        }
        // Nothing claimable (no due work, or every endpoint with work is at its limit): wait
        // for new work, freed capacity, or the poll interval. Otherwise claim again at once.
        if got == 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = shared.work_ready.notified() => {}
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
            }
        }
    }
    drain(&shared, workers).await;
}

async fn release_unknown_leases(shared: &Shared) -> Result<u64, crate::db::DbError> {
    let client = shared.pool.get().await?;
    let held: Vec<i64> = shared.capacity().leased.iter().copied().collect();
    Ok(client
        .execute(
            sql::RELEASE_UNKNOWN_LEASES,
            &[&shared.config.replica_id, &held],
        )
        .await?)
}

async fn claim_with_pool(
    shared: &Shared,
    req: &ClaimRequest,
) -> Result<Vec<Claimed>, crate::db::DbError> {
    let client = shared.pool.get().await?;
    Ok(claim(&client, req, shared.config.lease, &shared.config.replica_id).await?)
}

/// Graceful stop: wait for running attempts up to the grace period, then abort the rest and
/// give their leases back so another replica can take them at once.
async fn drain(shared: &Shared, mut workers: JoinSet<()>) {
    let grace = shared.config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    while !workers.is_empty() {
        match tokio::time::timeout_at(deadline, workers.join_next()).await {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if workers.is_empty() {
        return;
    }
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let ids: Vec<i64> = shared.capacity().running.drain().collect();
    tracing::warn!(
        count = ids.len(),
        "grace period over: releasing unfinished deliveries"
    );
    match shared.pool.get().await {
        Ok(client) => {
            if let Err(e) = client
                .execute(sql::RELEASE_LEASES, &[&shared.config.replica_id, &ids])
                .await
            {
                tracing::warn!(error = %e, "could not release leases; they will expire");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not release leases; they will expire"),
    }
}

/// One attempt of one delivery; never fails: every problem becomes an [`Outcome::Failed`].
async fn deliver(shared: &Shared, mut c: Claimed) -> Completed {
    let started_at = c.db_time();
    let t0 = Instant::now();
    let outcome = attempt(shared, &mut c).await;
    let elapsed = t0.elapsed();
    // Failures so far (for the backoff schedule) and this attempt's number (the claim).
    let failures = c.attempt_count + 1;
    let unit: f64 = rand::rng().random();
    let decision = shared.config.retry.decide(
        &outcome,
        failures.max(1) as u32,
        c.event_created_at,
        c.db_time(),
        unit,
    );
    let success = outcome.is_success();
    let ours = matches!(
        &outcome,
        Outcome::Failed { kind, .. } if matches!(kind, ErrorKind::InvalidEvent | ErrorKind::BodyTooLarge)
    );
    if !ours {
        let mut cap = shared.capacity();
        let (failures, cooldown) = (
            shared.config.circuit_failures,
            shared.config.circuit_cooldown,
        );
        let breaker = cap
            .breakers
            .entry(c.endpoint_id)
            .or_insert_with(|| Breaker::new(failures, cooldown));
        let before = breaker.state(Instant::now());
        let after = breaker.record(success, Instant::now());
        if before != after {
            tracing::info!(endpoint_id = c.endpoint_id, state = ?after, "circuit changed");
        }
        metrics::gauge!("outboxd_endpoint_circuit_state", "endpoint_id" => c.endpoint_id.to_string())
            .set(after as i32 as f64);
        if after == CircuitState::Closed && success {
            cap.breakers.remove(&c.endpoint_id);
        }
    }
    let ep_label = c.endpoint_id.to_string();
    let result = match &outcome {
        Outcome::Delivered { .. } => "success",
        Outcome::Failed { kind, .. } => kind.as_str(),
    };
    metrics::counter!("outboxd_attempts_total", "endpoint_id" => ep_label.clone(), "result" => result)
        .increment(1);
    metrics::histogram!("outboxd_attempt_duration_seconds",
        "outcome" => if success { "success" } else { "failure" })
    .record(elapsed.as_secs_f64());
    let outcome_label = match decision {
        Decision::Succeeded => "succeeded",
        Decision::Retry { .. } => "retry",
        Decision::Dead { .. } => "dead",
    };
    metrics::counter!("outboxd_deliveries_total", "endpoint_id" => ep_label, "outcome" => outcome_label)
        .increment(1);
    Completed {
        delivery_id: c.id,
        claim_count: c.claim_count,
        endpoint_id: c.endpoint_id,
        lane_key: c.lane_key,
        event_id: c.event_id,
        attempt: c.claim_count,
        started_at,
        duration_ms: elapsed.as_millis().min(i32::MAX as u128) as i32,
        outcome,
        decision,
    }
}

fn failed(kind: ErrorKind, message: impl Into<String>) -> Outcome {
    Outcome::Failed {
        kind,
        status: None,
        message: message.into(),
        excerpt: None,
        retry_after: None,
    }
}

async fn attempt(shared: &Shared, c: &mut Claimed) -> Outcome {
    let mut endpoint = shared.catalog.get().endpoint(c.endpoint_id).cloned();
    if endpoint.is_none() {
        // Created after our last reload, or left out because its row is invalid.
        shared.reload_catalog().await;
        endpoint = shared.catalog.get().endpoint(c.endpoint_id).cloned();
    }
    let Some(endpoint) = endpoint else {
        return failed(
            ErrorKind::Request,
            "endpoint configuration is invalid (see outboxd logs: secret or headers); fix it and the delivery is retried",
        );
    };
    if let Some(rate) = endpoint.rate_limit {
        let wait = {
            let mut cap = shared.capacity();
            let now = Instant::now();
            let slot = cap.next_slot.entry(endpoint.id).or_insert(now);
            let start = (*slot).max(now);
            *slot = start + Duration::from_secs_f64(1.0 / rate.max(0.001));
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let _big_permit;
    let body = match c.body.take() {
        Some(b) => Bytes::from(b.into_bytes()),
        None => {
            _big_permit = shared.big_payloads.acquire().await;
            match fetch_payload(shared, c.event_pk).await {
                Ok(b) => Bytes::from(b.into_bytes()),
                Err(e) => {
                    return failed(
                        ErrorKind::Request,
                        format!("could not load the payload: {e}"),
                    );
                }
            }
        }
    };
    // Per-resource order relies on every request of a lease ending before the lease does (then
    // nobody else can have taken the delivery over). A worker that waited too long (rate
    // limit, large-payload semaphore, an overloaded replica) must not start one.
    let (lease, timeout) = (shared.config.lease, shared.config.request_timeout);
    let margin = ((lease.saturating_sub(timeout)) / 2).min(Duration::from_secs(1));
    if Instant::now() + timeout + margin > c.claimed_at + lease {
        return failed(
            ErrorKind::Request,
            "not sent: the lease would expire before the request could finish (replica overloaded); retried",
        );
    }
    shared
        .sender
        .send(WebhookRequest {
            url: &endpoint.url,
            msg_id: &c.event_id,
            timestamp: Utc::now().timestamp(),
            body,
            secrets: &endpoint.secrets,
            endpoint_headers: &endpoint.headers,
            event_headers: c.headers.as_deref(),
        })
        .await
}

async fn fetch_payload(shared: &Shared, event_pk: i64) -> Result<String, crate::db::DbError> {
    let client = shared.pool.get().await?;
    let stmt = client.prepare_cached(sql::FETCH_PAYLOAD).await?;
    Ok(client.query_one(&stmt, &[&event_pk]).await?.get(0))
}

/// The completer: batches outcomes into one transaction each, retrying on database errors
/// (outcomes are kept until written), then frees their capacity and wakes the claimer.
pub async fn completer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Completed>) {
    const MAX_BATCH: usize = 1000;
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
            let result = match shared.pool.get().await {
                Ok(mut client) => record(&mut client, &batch, &shared.config.replica_id)
                    .await
                    .map_err(crate::db::DbError::from),
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(_) => break,
                Err(e) => {
                    metrics::counter!("outboxd_db_errors_total", "task" => "record").increment(1);
                    tracing::warn!(error = %e, batch = batch.len(), "recording outcomes failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        {
            let mut cap = shared.capacity();
            cap.total = cap.total.saturating_sub(batch.len());
            for c in &batch {
                cap.leased.remove(&c.delivery_id);
            }
            metrics::gauge!("outboxd_in_flight_deliveries").set(cap.total as f64);
        }
        batch.clear();
        shared.work_ready.notify_one();
    }
}
