//! Routing: visible, not yet routed events → one delivery per matching endpoint (SPEC §4).
//!
//! One replica routes at a time (a transaction-scoped advisory lock), taking events in `id`
//! order per tenant (an equal share of each tenant with a backlog, from the
//! `events_unrouted_tenant` partial index) and marking them `routed_at` in the same
//! transaction that creates their deliveries. Nothing is read with an `id > last_seen`
//! watermark, so a transaction that took its id early and commits late is routed when it
//! becomes visible. When the application serializes writes to a resource (SPEC §1), a later
//! event of that resource only becomes visible after the earlier one, so routing order is
//! resource order; lanes then keep delivery order equal to routing order.
//!
//! Ordering lanes: for each (endpoint, resource_key) the router bumps `outbox.lanes.pending`
//! (locking the row, in key order) and creates the new deliveries `held` unless the lane was
//! idle, in which case the first one becomes the head. `crate::record` does the reverse under
//! the same lock, so "exactly one head per lane" holds whatever the interleaving.
//!
//! Content filters ([`filters`]): an (event, endpoint) pair that matched only through filtered
//! subscriptions is a candidate until PostgreSQL has evaluated its filters. That happens in the
//! statement that creates the batch's deliveries, which counts the lanes from what passed (a
//! lane must only count deliveries that exist): one statement, one read of each event.

pub(crate) mod filters;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogHandle, Target};
use crate::db::{Conn, DbError, Tx};
use crate::metrics::names;
use crate::readiness::Task;
use crate::replica::Replica;
use crate::router::filters::Checks;
use crate::sql;

/// Resource keys longer than this are replaced by their SHA-256 in the lane key, so an absurd
/// key cannot exceed PostgreSQL's index entry limit and stall routing.
pub(crate) const MAX_LANE_KEY_BYTES: usize = 200;

/// The ordering lane for a resource key.
pub(crate) fn lane_key(resource_key: Option<&str>) -> Option<String> {
    let k = resource_key?;
    if k.len() <= MAX_LANE_KEY_BYTES {
        Some(k.to_owned())
    } else {
        Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(k.as_bytes()))
        ))
    }
}

/// An unrouted event, as the router reads it (never the payload).
#[derive(Debug, Clone)]
pub(crate) struct UnroutedEvent {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
}

/// A delivery to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewDelivery {
    pub event_pk: i64,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
    /// Empty: the event matched an unfiltered subscription of the endpoint (or an operator
    /// replays it). Otherwise the catalog's filters ([`Target::filter`]) of the subscriptions
    /// it matched by type: the delivery is created only if one of them passes.
    pub filters: Vec<u32>,
    /// Create it dead, with this reason: `OUTBOXD_STRICT_EVENT_TYPES` and a type the catalog
    /// does not have.
    pub dead: Option<String>,
}

/// The pure part of a routing step: which deliveries (some still subject to filters) a batch
/// of events produces.
/// `already_routed` holds event_ids routed by earlier batches (idempotency); duplicates inside
/// the batch are routed once, at their first occurrence. Stops early (returning how many events
/// it consumed) once `max_deliveries` would be exceeded, so fan-out memory stays bounded.
/// `strict`: `OUTBOXD_STRICT_EVENT_TYPES` (deliveries of unregistered types are created dead).
pub(crate) fn plan(
    catalog: &Catalog,
    events: &[UnroutedEvent],
    already_routed: &HashSet<String>,
    max_deliveries: usize,
    strict: bool,
) -> (usize, Vec<NewDelivery>) {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if already_routed.contains(&e.event_id) || !seen.insert(e.event_id.as_str()) {
            continue;
        }
        catalog.route(e.tenant_id.as_deref(), &e.event_type, &mut targets);
        let endpoints = targets.chunk_by(|a, b| a.endpoint_id == b.endpoint_id);
        if i > 0 && out.len() + endpoints.clone().count() > max_deliveries {
            return (i, out);
        }
        let lane = lane_key(e.resource_key.as_deref());
        let dead = (strict && !catalog.is_registered(&e.event_type)).then(|| {
            format!(
                "event type {:?} is not registered (OUTBOXD_STRICT_EVENT_TYPES=true): register it, then retry the dead deliveries",
                e.event_type
            )
        });
        for ways in endpoints {
            // Sorted: an unfiltered way comes first, and then no filter matters.
            let filters = if ways[0].filter.is_none() {
                Vec::new()
            } else {
                ways.iter().filter_map(|t| t.filter).collect()
            };
            out.push(NewDelivery {
                event_pk: e.id,
                endpoint_id: ways[0].endpoint_id,
                lane_key: lane.clone(),
                filters,
                dead: dead.clone(),
            });
        }
    }
    (events.len(), out)
}

/// Result of one routing transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteStats {
    /// Another replica holds the routing lock.
    pub busy: bool,
    /// Events marked routed (including those that matched nothing and duplicates).
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Deliveries created as the head of an idle lane or unordered (claimable now).
    pub ready: usize,
    /// Candidates left out because none of their filters passed.
    pub filtered: usize,
    /// Filter evaluations that errored (each one is a row in `outbox.filter_errors`).
    pub filter_errors: usize,
    /// A filter raised an error that silent mode does not catch: nothing was routed, route the
    /// batch again in safe mode ([`filters`]).
    pub retry_safely: bool,
}

/// Routes at most `batch` events in one short transaction. Reloads the catalog inside the
/// same transaction when its version changed, after reading the events, so every event is
/// routed with a configuration at least as new as every change committed before it.
/// `safe`: evaluate filters in safe mode ([`filters`]).
pub(crate) async fn route_once(
    client: &mut Conn,
    catalog: &CatalogHandle,
    cursor: &mut String,
    batch: usize,
    max_deliveries: usize,
    strict: bool,
    safe: bool,
) -> Result<RouteStats, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one(sql::ROUTE_LOCK, &[&crate::locks::ROUTER])
        .await?
        .get(0);
    if !locked {
        return Ok(RouteStats {
            busy: true,
            ..RouteStats::default()
        });
    }
    let rows = tx
        .query(sql::ROUTE_FETCH, &[&(batch as i64), &cursor.as_str()])
        .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(RouteStats::default());
    }
    // The configuration is checked after the events are read, never before: each statement
    // of this (read committed) transaction sees what was committed when it started, so an
    // endpoint or subscription committed before any event just read is seen here. Checked
    // first, an endpoint created and then published to between the two statements would have
    // been missing from the catalog its event was routed with, and the event never delivered
    // to it (seen once as a flaky admin test on a loaded machine).
    let version: i64 = tx.query_one(sql::CATALOG_VERSION, &[]).await?.get(0);
    if version != catalog.get().version {
        let _loading = catalog.loading().await;
        if version != catalog.get().version {
            catalog.set(Catalog::load(&tx, &catalog.get()).await?);
        }
    }
    let cat = catalog.get();
    let events: Vec<UnroutedEvent> = rows
        .iter()
        .map(|r| UnroutedEvent {
            id: r.get(0),
            event_id: r.get(1),
            event_type: r.get(2),
            resource_key: r.get(3),
            tenant_id: r.get(4),
        })
        .collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let already: HashSet<String> = tx
        .query(sql::ROUTE_ALREADY_ROUTED, &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (consumed, candidates) = plan(&cat, &events, &already, max_deliveries, strict);
    // Mark first: lane locks (taken next) are held until commit, and completions of those
    // lanes wait for them, so take them as late as possible.
    let routed: Vec<i64> = events[..consumed].iter().map(|e| e.id).collect();
    tx.execute(sql::ROUTE_MARK, &[&routed]).await?;
    let mut checks = Checks::of_catalog(&cat, &candidates);
    checks.safe = safe;
    let inserted = match insert_deliveries(&tx, &candidates, &checks).await {
        Ok(inserted) => inserted,
        // Only a filter can make this statement fail on data; anything else fails again.
        Err(e) if !safe && !checks.is_empty() && e.as_db_error().is_some() => {
            tracing::warn!(
                error = %crate::db::error::describe(&e),
                "a content filter raised an error that silent mode does not catch; \
                 routing this batch again with each filter evaluated on its own"
            );
            tx.rollback().await?;
            return Ok(RouteStats {
                retry_safely: true,
                ..RouteStats::default()
            });
        }
        Err(e) => return Err(e),
    };
    count_event_types(&tx, &events[..consumed]).await?;
    if inserted.ready > 0 {
        tx.execute(sql::NOTIFY_DELIVERIES, &[]).await?;
    }
    tx.commit().await?;
    if let Some(last) = events[..consumed].last() {
        // The next batch starts its walk over the tenants after this one.
        *cursor = last.tenant_id.clone().unwrap_or_default();
    }
    Ok(RouteStats {
        busy: false,
        events: consumed,
        deliveries: inserted.created,
        ready: inserted.ready,
        filtered: candidates.len() - inserted.created,
        filter_errors: inserted.filter_errors,
        retry_safely: false,
    })
}

/// What [`insert_deliveries`] created.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// Deliveries created (candidates without filters, and those with a filter that passed).
    pub created: usize,
    /// Of those, claimable now: unordered, or the new head of an idle lane.
    pub ready: usize,
    /// Filter evaluations that errored (rows written to `outbox.filter_errors`).
    pub filter_errors: usize,
}

/// Creates deliveries in the order given (delivery ids follow it, and lane order is id order)
/// in one statement (`sql/engine/route_insert.sql`): filtered candidates only if one of their
/// `checks` passes; lanes counted from what is created and locked in key order; each delivery
/// `held` unless it is the first new delivery of a lane that was idle. Used by routing and by
/// an operator's replay (`crate::eventlog`), so both keep lanes and filters the same way.
pub(crate) async fn insert_deliveries(
    tx: &Tx<'_>,
    candidates: &[NewDelivery],
    checks: &Checks<'_>,
) -> Result<Inserted, tokio_postgres::Error> {
    if candidates.is_empty() {
        return Ok(Inserted::default());
    }
    let n = candidates.len();
    let (mut ev, mut ep, mut lk, mut filtered, mut dead) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for d in candidates {
        ev.push(d.event_pk);
        ep.push(d.endpoint_id);
        lk.push(d.lane_key.as_deref());
        filtered.push(!d.filters.is_empty());
        dead.push(d.dead.as_deref());
    }
    let row = tx
        .query_one(
            sql::ROUTE_INSERT,
            &[
                &ev,
                &ep,
                &lk,
                &filtered,
                &checks.candidate,
                &checks.subscription_id,
                &checks.text_n,
                &checks.texts,
                &checks.safe,
                &dead,
            ],
        )
        .await?;
    let count = |i: usize| usize::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok(Inserted {
        created: count(0),
        ready: count(1),
        filter_errors: count(2),
    })
}

/// Counts a routed batch into `outbox.event_types` (per tenant and type), in the routing
/// transaction: the event log's type picker and pattern searches read it.
async fn count_event_types(
    tx: &Tx<'_>,
    events: &[UnroutedEvent],
) -> Result<(), tokio_postgres::Error> {
    let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for e in events {
        let tenant = e.tenant_id.as_deref().unwrap_or("");
        *counts.entry((tenant, e.event_type.as_str())).or_insert(0) += 1;
    }
    if counts.is_empty() {
        return Ok(());
    }
    let (mut tenants, mut types, mut ns) = (vec![], vec![], vec![]);
    for ((t, ty), n) in counts {
        tenants.push(t);
        types.push(ty);
        ns.push(n);
    }
    tx.execute(sql::ROUTE_EVENT_TYPES, &[&tenants, &types, &ns])
        .await?;
    Ok(())
}

/// The router task: route while there is a backlog, then wait for a notification or the
/// poll interval. After routing something it re-checks a few times quickly, to catch
/// transactions that were committing meanwhile (their INSERT saw a backlog and so did not
/// send a NOTIFY).
pub(crate) async fn run(replica: Arc<Replica>, shutdown: CancellationToken) {
    let batch = replica.config.route_batch;
    let max_deliveries = batch.saturating_mul(10).max(1000);
    let mut backoff = Duration::from_millis(100);
    let mut recheck = 0u32;
    let mut tenant_cursor = String::new();
    let mut safe = false;
    while !shutdown.is_cancelled() {
        let result = match replica.db().await {
            Ok(mut client) => route_once(
                &mut client,
                &replica.catalog,
                &mut tenant_cursor,
                batch,
                max_deliveries,
                replica.config.strict_event_types,
                std::mem::take(&mut safe),
            )
            .await
            .map_err(DbError::from),
            Err(e) => Err(e),
        };
        let wait = match result {
            Ok(stats) => {
                replica.readiness.ok(Task::Router, Instant::now());
                backoff = Duration::from_millis(100);
                if stats.events > 0 {
                    metrics::counter!(names::EVENTS_ROUTED).increment(stats.events as u64);
                    metrics::counter!(names::DELIVERIES_CREATED).increment(stats.deliveries as u64);
                    count_filters(&stats);
                }
                if stats.ready > 0 {
                    replica.work_ready.notify_one();
                }
                if stats.retry_safely {
                    safe = true;
                    None
                } else if stats.busy {
                    Some(replica.config.poll_interval)
                } else if stats.events >= batch {
                    recheck = 0;
                    None
                } else if stats.events > 0 {
                    recheck = 3;
                    Some(Duration::from_millis(2))
                } else if recheck > 0 {
                    recheck -= 1;
                    Some(Duration::from_millis(5 << (2 - recheck.min(2))))
                } else {
                    Some(replica.config.poll_interval)
                }
            }
            Err(e) => {
                crate::metrics::db_error("router");
                let why = replica.failed(Task::Router, &e).await;
                tracing::warn!(error = %why, "routing failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(backoff)
            }
        };
        if let Some(wait) = wait {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = replica.events_ready.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The routing metrics of content filters (README "Monitoring").
fn count_filters(stats: &RouteStats) {
    if stats.filtered > 0 {
        metrics::counter!(names::DELIVERIES_FILTERED).increment(stats.filtered as u64);
    }
    if stats.filter_errors > 0 {
        metrics::counter!(names::FILTER_ERRORS).increment(stats.filter_errors as u64);
        tracing::warn!(
            errors = stats.filter_errors,
            "content filters errored on some events (see outbox.filter_errors)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_resource_keys_get_a_hashed_lane() {
        assert_eq!(lane_key(None), None);
        assert_eq!(lane_key(Some("order:1")).as_deref(), Some("order:1"));
        let long = "k".repeat(10_000);
        let lane = lane_key(Some(&long)).unwrap();
        assert!(lane.starts_with("sha256:") && lane.len() == 7 + 64);
        assert_eq!(lane_key(Some(&long)), Some(lane));
    }

    /// The idempotency check probes the event_id index once per id, whatever the statistics
    /// say. Written as `event_id = ANY($1)`, the planner chose a sequential scan of all events
    /// for some batches (found by the benchmark: 30 ms per batch at 100 k events).
    #[tokio::test]
    async fn the_idempotency_check_never_scans_the_whole_events_table() {
        let db = testkit::fresh_db().await;
        let c = db.client().await;
        c.batch_execute(
            "INSERT INTO outbox.events (event_type, payload, routed_at)
               SELECT 'x', '{}', now() FROM generate_series(1, 20000);
             INSERT INTO outbox.events (event_type, payload)
               SELECT 'x', '{}' FROM generate_series(1, 500);
             ANALYZE outbox.events;",
        )
        .await
        .unwrap();
        let ids: Vec<String> = c
            .query(
                "SELECT event_id FROM outbox.events WHERE routed_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            c.batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .unwrap();
            let explain = format!("EXPLAIN {}", sql::ROUTE_ALREADY_ROUTED);
            let rows = c.query(&explain, &[&ids]).await.unwrap();
            let plan: String = rows.iter().map(|r| r.get::<_, String>(0) + "\n").collect();
            assert!(!plan.contains("Seq Scan"), "{mode}:\n{plan}");
            assert!(plan.contains("events_event_id"), "{mode}:\n{plan}");
        }
    }
}
