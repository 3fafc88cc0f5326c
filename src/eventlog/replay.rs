//! Replay: queue every retained event since T that an endpoint's subscriptions match, as new
//! deliveries, through the endpoint's lanes in event order (see [`Ordering::REPLAY`]).
//!
//! It walks the events in id order a window at a time ([`WINDOW`] events, each window its own
//! short transaction), matches each against the endpoint's active subscription patterns with
//! the router's own matcher, and creates the deliveries the way routing does
//! ([`crate::router::insert_deliveries`]): an event matched only by subscriptions with a
//! content filter is queued only if one of those filters passes, and a filter that cannot
//! decide is recorded in `outbox.filter_errors` (evaluated in safe mode, so no payload can
//! make a replay fail). Events with a delivery to the endpoint still on its
//! way are skipped, so running a replay again (after a timeout, say) queues only what is
//! missing.
//!
//! With `enable`, the endpoint (normally created disabled) is enabled in the transaction
//! that queues the last window, while holding the router's lock: events routed before that
//! commit are replayed, events routed after it are routed to the endpoint, and none can be
//! routed to it ahead of the replayed ones. That is the exact backfill of a new subscriber.
//!
//! [`Ordering::REPLAY`]: super::actions::Ordering::REPLAY

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Error, Scope, col};
use crate::pattern::Pattern;
use crate::replica::Replica;
use crate::router::filters::{Checks, Filter};
use crate::router::{NewDelivery, insert_deliveries, lane_key};
use crate::sql::eventlog as q;

/// Events read per transaction.
pub const WINDOW: i64 = 5_000;

/// What to replay.
#[derive(Debug, Clone)]
pub(crate) struct Replay {
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    /// Only these types (exact or patterns), among those the subscriptions match.
    pub event_types: Option<Vec<String>>,
    /// Enable the endpoint with the last window (see the module docs).
    pub enable: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Replayed {
    /// Deliveries created.
    pub queued: i64,
    /// Events the endpoint's subscriptions match by type that none of their content filters
    /// let through (or whose filters could not decide: see `outbox.filter_errors`).
    pub filtered: i64,
    /// Events looked at (in the time range and the endpoint's tenancy).
    pub scanned: i64,
    /// The endpoint was enabled at the end.
    pub enabled: bool,
}

fn parse_patterns(field: &'static str, raw: &[String]) -> Result<Vec<Pattern>, Error> {
    raw.iter()
        .map(|p| Pattern::parse(p).map_err(|e| Error::invalid(field, e.to_string())))
        .collect()
}

/// An active subscription of the endpoint replayed to.
struct Subscription {
    id: i64,
    patterns: Vec<Pattern>,
    filter: Option<String>,
}

async fn subscriptions(db: &crate::db::Conn, endpoint_id: i64) -> Result<Vec<Subscription>, Error> {
    let mut out = Vec::new();
    for row in db.query(q::REPLAY_SUBSCRIPTIONS, &[&endpoint_id]).await? {
        out.push(Subscription {
            id: col(&row, "id")?,
            patterns: parse_patterns("subscriptions", &col::<Vec<String>>(&row, "event_types")?)?,
            filter: col(&row, "filter")?,
        });
    }
    Ok(out)
}

/// Runs a replay to the end in a task of its own, so that a caller who gives up (a closed
/// browser tab, a client timeout) does not stop it half-way: it goes on to the end, and its
/// outcome is logged.
pub(crate) async fn replay_detached(
    mut db: super::Conn,
    replica: Arc<Replica>,
    scope: Scope,
    endpoint_id: i64,
    r: Replay,
) -> Result<Replayed, Error> {
    let task =
        tokio::spawn(async move { replay(&mut db, &replica, &scope, endpoint_id, &r).await });
    task.await.map_err(|e| {
        tracing::error!(error = %e, endpoint_id, "event log: the replay task failed");
        Error::Internal
    })?
}

/// Runs a replay to the end (each window committed on its own).
pub(crate) async fn replay(
    db: &mut crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    endpoint_id: i64,
    r: &Replay,
) -> Result<Replayed, Error> {
    if let Some(until) = r.until {
        if until <= r.since {
            return Err(Error::invalid("until", "must be later than since"));
        }
        if r.enable {
            return Err(Error::invalid(
                "enable",
                "only without until: enabling after a replay that stops early would miss the events in between",
            ));
        }
    }
    let only = match &r.event_types {
        Some(t) if t.is_empty() => {
            return Err(Error::invalid(
                "event_types",
                "give at least one, or leave it out",
            ));
        }
        Some(t) => Some(parse_patterns("event_types", t)?),
        None => None,
    };
    let ep = db
        .query_opt(q::ENDPOINT_LOCK, &[&endpoint_id, &scope.tenant()])
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} does not exist")))?;
    let tenant: Option<String> = col(&ep, "tenant_id")?;
    let all_tenants: bool = col(&ep, "all_tenants")?;
    let subscribed = subscriptions(db, endpoint_id).await?;
    if subscribed.is_empty() {
        return Err(Error::Conflict(format!(
            "endpoint {endpoint_id} has no active subscription: there is nothing it would receive"
        )));
    }
    let lookup = |f: u32| {
        subscribed.get(f as usize).and_then(|s| {
            s.filter.as_deref().map(|text| Filter {
                subscription_id: s.id,
                text,
            })
        })
    };
    // The ways the event reaches the endpoint, as routing has them: none (not wanted), no
    // filter (an unfiltered subscription matches), or the matching subscriptions' filters.
    let ways = |event_type: &str| -> Option<Vec<u32>> {
        if !only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p.matches(event_type)))
        {
            return None;
        }
        let mut filters = Vec::new();
        let mut matched = false;
        for (i, s) in subscribed.iter().enumerate() {
            if s.patterns.iter().any(|p| p.matches(event_type)) {
                if s.filter.is_none() {
                    return Some(Vec::new());
                }
                matched = true;
                filters.push(i as u32);
            }
        }
        matched.then_some(filters)
    };

    let mut cursor: i64 = col(&db.query_one(q::REPLAY_START, &[&r.since]).await?, "cursor")?;
    let mut done = Replayed {
        queued: 0,
        filtered: 0,
        scanned: 0,
        enabled: false,
    };
    // With `enable`: once a window comes back short, the windows after it (the last one
    // included) hold the router's lock.
    let mut at_end = false;
    loop {
        let finishing = r.enable && at_end;
        let tx = db.transaction().await?;
        if finishing {
            tx.execute(crate::sql::admin::ROUTING_LOCK, &[&crate::locks::ROUTER])
                .await?;
        }
        let rows = tx
            .query(
                q::REPLAY_EVENTS,
                &[
                    &endpoint_id,
                    &cursor,
                    &r.since,
                    &r.until,
                    &tenant,
                    &all_tenants,
                    &WINDOW,
                ],
            )
            .await?;
        let mut deliveries = Vec::new();
        for row in &rows {
            let id: i64 = col(row, "id")?;
            cursor = id;
            let event_type: String = col(row, "event_type")?;
            if let Some(filters) = ways(&event_type) {
                let key: Option<String> = col(row, "resource_key")?;
                deliveries.push(NewDelivery {
                    event_pk: id,
                    endpoint_id,
                    lane_key: lane_key(key.as_deref()),
                    filters,
                    dead: None,
                });
            }
        }
        done.scanned += rows.len() as i64;
        let mut checks = Checks::of(&deliveries, lookup);
        checks.safe = true;
        let inserted = insert_deliveries(&tx, &deliveries, &checks).await?;
        let ready = inserted.ready;
        done.queued += inserted.created as i64;
        done.filtered += (deliveries.len() - inserted.created) as i64;
        let short = (rows.len() as i64) < WINDOW;
        if finishing && short {
            tx.execute(
                q::ENDPOINT_SET_ENABLED,
                &[&endpoint_id, &true, &None::<String>, &scope.tenant()],
            )
            .await?;
            done.enabled = true;
        }
        if ready > 0 {
            tx.execute(crate::sql::NOTIFY_DELIVERIES, &[]).await?;
        }
        tx.commit().await?;
        if ready > 0 {
            replica.work_ready.notify_one();
        }
        if short {
            if finishing || !r.enable {
                break;
            }
            at_end = true;
        }
    }
    tracing::info!(
        endpoint_id,
        queued = done.queued,
        filtered = done.filtered,
        scanned = done.scanned,
        enabled = done.enabled,
        "event log: replay finished"
    );
    Ok(done)
}
