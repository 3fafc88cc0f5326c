//! What the tasks of one replica share: its configuration, the connection pool, the catalog,
//! the HTTP sender, the wake-ups between tasks, and the in-memory bookkeeping of work in
//! flight ([`Capacity`]), circuit breakers and rate-limit slots.
//!
//! It sits low in the house: the services (router, claimer, workers, recorder, maintenance,
//! admin API) take an `&Replica`, and nothing here knows about them.
//!
//! Locks: the bookkeeping mutexes are held only for a few map operations, never across
//! an `.await`. When more than one is needed (the claim policy, a scrape), take them in the
//! order capacity → pacer → breakers → endpoint metrics → stats.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::catalog::{Catalog, CatalogHandle};
use crate::circuit::Breakers;
use crate::config::Config;
use crate::db::{self, Conn, DbError};
use crate::delivery::http::Sender;
use crate::metrics::database::StatsState;
use crate::metrics::endpoints::EndpointSeries;
use crate::pacing::Pacer;
use crate::readiness::{Readiness, Task};

/// Large payloads (not returned inline by the claim) are loaded by at most this many
/// workers at once, which bounds the memory they take.
const BIG_PAYLOAD_LOADS: usize = 4;

/// State shared by every task of one replica.
pub(crate) struct Replica {
    pub config: Config,
    pub pool: deadpool_postgres::Pool,
    pub catalog: CatalogHandle,
    pub sender: Sender,
    /// Wakes the claimer: deliveries became ready or capacity was freed.
    pub work_ready: Notify,
    /// Wakes the router: events were published.
    pub events_ready: Notify,
    /// Wakes the catalog reloader: endpoints or subscriptions changed.
    pub config_changed: Notify,
    /// Wakes the inbound listener's source reloader: `outbox.sources` changed.
    pub sources_changed: Notify,
    /// Bounds memory: large payloads are loaded by a few workers at a time.
    pub big_payloads: Semaphore,
    /// What `/readyz` says: start-up finished, loops succeeding.
    pub readiness: Readiness,
    capacity: Mutex<Capacity>,
    pacer: Mutex<Pacer>,
    breakers: Mutex<Breakers>,
    /// The per-endpoint series of `/metrics` (workers add to them, scrapes read them).
    endpoint_metrics: Mutex<EndpointSeries>,
    /// The database-wide gauges, when this replica holds the stats lease.
    stats: Mutex<StatsState>,
}

/// A poisoned lock only means another task panicked while holding it; the maps inside stay
/// usable, so take them anyway rather than stopping the replica.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Replica {
    pub fn new(
        config: Config,
        pool: deadpool_postgres::Pool,
        catalog: Catalog,
        sender: Sender,
    ) -> Replica {
        let breakers = Breakers::new(config.circuit_failures, config.circuit_cooldown);
        let endpoint_metrics = EndpointSeries::new(config.metrics_endpoint_labels);
        // Figures older than two refreshes are not shown (the stats lease lasts three).
        let stats = StatsState::new(config.stats_interval * 2);
        // Stuck, not idle: the router and the claimer come round every poll interval.
        let stale_after = (config.poll_interval * 10).max(Duration::from_secs(30));
        let handle = CatalogHandle::default();
        handle.set(catalog);
        Replica {
            config,
            pool,
            catalog: handle,
            sender,
            work_ready: Notify::new(),
            events_ready: Notify::new(),
            config_changed: Notify::new(),
            sources_changed: Notify::new(),
            big_payloads: Semaphore::new(BIG_PAYLOAD_LOADS),
            readiness: Readiness::new(stale_after),
            capacity: Mutex::new(Capacity::default()),
            pacer: Mutex::new(Pacer::default()),
            breakers: Mutex::new(breakers),
            endpoint_metrics: Mutex::new(endpoint_metrics),
            stats: Mutex::new(stats),
        }
    }

    /// A pooled connection that sends queries the way `OUTBOXD_POOLER` allows.
    pub async fn db(&self) -> Result<Conn, DbError> {
        db::get(&self.pool, self.config.pooler).await
    }

    /// A round of `task` failed with `e`: readiness follows, and the text to log is returned.
    /// A permission error (SQLSTATE 42501) names the object; this adds which privileges the
    /// role lacks, from the same check start-up makes.
    pub async fn failed(&self, task: Task, e: &DbError) -> String {
        let mut why = e.to_string();
        if e.sqlstate() == Some("42501") {
            let missing = async { db::privileges::missing(&self.db().await?).await }.await;
            if let Ok(missing) = missing
                && !missing.is_empty()
            {
                why = format!(
                    "{why}; the database role lacks {} (grant it outboxd_runtime: README \"Database roles\")",
                    db::privileges::list(&missing)
                );
            }
        }
        self.readiness.failed(task, why.clone());
        why
    }

    pub fn capacity(&self) -> MutexGuard<'_, Capacity> {
        lock(&self.capacity)
    }

    pub fn pacer(&self) -> MutexGuard<'_, Pacer> {
        lock(&self.pacer)
    }

    pub fn breakers(&self) -> MutexGuard<'_, Breakers> {
        lock(&self.breakers)
    }

    pub fn endpoint_metrics(&self) -> MutexGuard<'_, EndpointSeries> {
        lock(&self.endpoint_metrics)
    }

    pub fn stats(&self) -> MutexGuard<'_, StatsState> {
        lock(&self.stats)
    }

    /// Whether the configuration version in the database differs from the catalog's (false
    /// when it cannot be read: the next look will tell).
    pub async fn catalog_version_moved(&self) -> bool {
        let version = async {
            let client = self.db().await?;
            let row = client.query_one(crate::sql::CATALOG_VERSION, &[]).await?;
            Ok::<i64, DbError>(row.get(0))
        };
        version.await.is_ok_and(|v| v != self.catalog.get().version)
    }

    /// Reloads endpoints and subscriptions if their version moved since the catalog was
    /// loaded (the router may have loaded it meanwhile).
    pub async fn reload_catalog_if_moved(&self) {
        let _loading = self.catalog.loading().await;
        if self.catalog_version_moved().await {
            self.reload_catalog().await;
        }
    }

    /// Reloads endpoints and subscriptions now; on failure keeps the previous catalog.
    async fn reload_catalog(&self) {
        let result = async {
            let client = self.db().await?;
            Ok::<_, DbError>(Catalog::load(&client, &self.catalog.get()).await?)
        }
        .await;
        match result {
            Ok(c) => {
                tracing::debug!(
                    version = c.version,
                    endpoints = c.endpoint_count(),
                    "catalog loaded"
                );
                // A client certificate an endpoint now names is loaded (or its problem
                // logged) before a delivery needs it.
                self.sender
                    .preload_client_certificates(c.client_certificates());
                self.catalog.set(c);
            }
            Err(e) => {
                crate::metrics::db_error("catalog");
                tracing::warn!(error = %e, "could not reload endpoints; keeping the previous ones")
            }
        }
    }
}

/// This replica's bookkeeping of work in flight, counted two ways:
/// * per endpoint, HTTP requests claimed and not yet answered: that is what `max_in_flight`
///   limits, and what protects a receiver. The slot frees as soon as the answer arrives;
/// * in total, deliveries from claim until their outcome is committed, which
///   `OUTBOXD_CONCURRENCY` limits: a stalled database stalls claiming instead of piling up
///   results in memory.
#[derive(Debug, Default)]
pub(crate) struct Capacity {
    /// Deliveries claimed and not yet recorded.
    total: usize,
    /// HTTP requests claimed and not yet answered, per endpoint.
    per_endpoint: HashMap<i64, u32>,
    /// Deliveries whose HTTP attempt is running (released on shutdown if aborted).
    running: HashSet<i64>,
    /// Deliveries claimed and not yet recorded: what this replica knows it holds.
    leased: HashSet<i64>,
}

impl Capacity {
    /// Deliveries this replica may still claim under `concurrency`.
    pub fn free(&self, concurrency: usize) -> usize {
        concurrency.saturating_sub(self.total)
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Requests in flight per endpoint (only endpoints with some).
    pub fn busy_endpoints(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.per_endpoint
            .iter()
            .filter(|&(_, &n)| n > 0)
            .map(|(&ep, &n)| (ep, n))
    }

    pub fn in_flight(&self, endpoint_id: i64) -> u32 {
        self.per_endpoint.get(&endpoint_id).copied().unwrap_or(0)
    }

    /// A delivery was claimed: its request is about to start.
    pub fn claimed(&mut self, delivery_id: i64, endpoint_id: i64) {
        self.total += 1;
        self.leased.insert(delivery_id);
        self.running.insert(delivery_id);
        *self.per_endpoint.entry(endpoint_id).or_insert(0) += 1;
    }

    /// The request of a delivery ended (answered, failed or aborted): its endpoint slot is
    /// free; the delivery still counts towards the total until it is recorded.
    pub fn answered(&mut self, delivery_id: i64, endpoint_id: i64) {
        self.running.remove(&delivery_id);
        if let Some(n) = self.per_endpoint.get_mut(&endpoint_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_endpoint.remove(&endpoint_id);
            }
        }
    }

    /// Sets `n` slots of `endpoint_id` (and of the total) aside for deliveries about to be
    /// handed to this replica by the recorder ([`crate::record`]), so the claimer cannot give
    /// them away meanwhile. [`unreserve`](Capacity::unreserve) takes them back; each hand-off
    /// that happened is then counted with [`claimed`](Capacity::claimed).
    pub fn reserve(&mut self, endpoint_id: i64, n: u32) {
        self.total += n as usize;
        *self.per_endpoint.entry(endpoint_id).or_insert(0) += n;
    }

    pub fn unreserve(&mut self, endpoint_id: i64, n: u32) {
        self.total = self.total.saturating_sub(n as usize);
        if let Some(m) = self.per_endpoint.get_mut(&endpoint_id) {
            *m = m.saturating_sub(n);
            if *m == 0 {
                self.per_endpoint.remove(&endpoint_id);
            }
        }
    }

    /// Outcomes were committed: these deliveries are no longer ours.
    pub fn recorded(&mut self, delivery_ids: impl IntoIterator<Item = i64>) {
        for id in delivery_ids {
            if self.leased.remove(&id) {
                self.total = self.total.saturating_sub(1);
            }
        }
    }

    /// Every delivery this replica holds a lease on.
    pub fn leased(&self) -> Vec<i64> {
        self.leased.iter().copied().collect()
    }

    /// Deliveries whose request was still running (at shutdown, after their workers were
    /// aborted): their leases are to be given back.
    pub fn take_running(&mut self) -> Vec<i64> {
        self.running.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_holds_an_endpoint_slot_until_answered_and_the_total_until_recorded() {
        let mut c = Capacity::default();
        c.claimed(1, 10);
        c.claimed(2, 10);
        c.claimed(3, 11);
        assert_eq!((c.total(), c.in_flight(10), c.in_flight(11)), (3, 2, 1));
        assert_eq!(c.free(5), 2);
        c.answered(1, 10);
        assert_eq!((c.total(), c.in_flight(10)), (3, 1));
        c.recorded([1]);
        assert_eq!(c.total(), 2);
        let mut busy: Vec<_> = c.busy_endpoints().collect();
        busy.sort_unstable();
        assert_eq!(busy, [(10, 1), (11, 1)]);
        let mut running = c.take_running();
        running.sort_unstable();
        assert_eq!(running, [2, 3]);
        // A reservation holds slots like a claim until it is taken back.
        c.reserve(11, 2);
        assert_eq!((c.total(), c.in_flight(11)), (4, 3));
        c.unreserve(11, 2);
        assert_eq!((c.total(), c.in_flight(11)), (2, 1));
        // Recording twice (a retried batch) does not count twice.
        c.recorded([2, 2, 3]);
        assert_eq!(c.total(), 0);
        assert!(c.leased().is_empty());
    }
}
