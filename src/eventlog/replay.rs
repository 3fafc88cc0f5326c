//! Replay: queue every retained event since T that an endpoint's subscriptions match, as new
//! deliveries, through the endpoint's lanes in event order (see [`Ordering::REPLAY`]).
//!
//! It walks the events in id order a window at a time ([`WINDOW`] events, each window its own
//! short transaction), matches each against the endpoint's active subscription patterns with
//! the router's own matcher, and creates the deliveries the way routing does
//! ([`crate::router::insert_deliveries`]). Events with a delivery to the endpoint still on its
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
    let subscribed = parse_patterns("subscriptions", &col::<Vec<String>>(&ep, "patterns")?)?;
    if subscribed.is_empty() {
        return Err(Error::Conflict(format!(
            "endpoint {endpoint_id} has no active subscription: there is nothing it would receive"
        )));
    }
    let wanted = |event_type: &str| {
        subscribed.iter().any(|p| p.matches(event_type))
            && only
                .as_ref()
                .is_none_or(|o| o.iter().any(|p| p.matches(event_type)))
    };

    let mut cursor: i64 = col(&db.query_one(q::REPLAY_START, &[&r.since]).await?, "cursor")?;
    let mut done = Replayed {
        queued: 0,
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
            if wanted(&event_type) {
                let key: Option<String> = col(row, "resource_key")?;
                deliveries.push(NewDelivery {
                    event_pk: id,
                    endpoint_id,
                    lane_key: lane_key(key.as_deref()),
                    filters: Vec::new(),
                });
            }
        }
        done.scanned += rows.len() as i64;
        let ready = insert_deliveries(&tx, &deliveries).await?;
        done.queued += deliveries.len() as i64;
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
        scanned = done.scanned,
        enabled = done.enabled,
        "event log: replay finished"
    );
    Ok(done)
}
