//! What an operator can do about a delivery or an endpoint. Every action says what it does
//! to ordering ([`Ordering`]): the console shows it in the confirmation, the API documents it.
//!
//! * **retry now**: a dead delivery goes back into its lane (`outbox.requeue`); a pending or
//!   retrying one that leads its lane is made due now. A held one cannot jump its lane.
//! * **resend**: a succeeded delivery goes back into its lane, same event, same `webhook-id`.
//! * **retry dead**: every dead delivery of an endpoint, or those of a time range.
//! * **test event**: an `outboxd.test` event to one endpoint only, carrying the catalog's
//!   example payload of the event type asked for (when it has one).
//! * enable, disable, rotate the secret.
//!
//! After anything that makes work due, every replica's claimer is woken (NOTIFY) and this
//! one's at once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Delivery, Error, Scope, Status, col, detail};
use crate::replica::Replica;
use crate::sql::eventlog as q;

/// What an action does to ordering, in the words the console and the API docs use.
pub(crate) struct Ordering;

impl Ordering {
    pub const RETRY_DEAD: &str = "A dead delivery that is retried goes back into its \
        resource's lane: it is sent right after the delivery that lane is working on now (if \
        any), ahead of later events of the same resource still waiting. Later events the \
        receiver already got stay delivered, so it receives this one after them.";
    pub const RETRY_PENDING: &str = "It leads its lane (or has no resource key): sending it now \
        changes no order; later events of the same resource keep waiting for it.";
    pub const RESEND: &str = "The event is sent again with the same webhook-id (receivers \
        that dedupe drop it). It goes back into its resource's lane: right after the delivery \
        that lane is working on now, ahead of later events of the same resource still \
        waiting; later events the receiver already got stay delivered, so it receives this \
        one after them.";
    pub const RETRY_DEAD_RANGE: &str = "Every dead delivery of this endpoint whose event was \
        created in the range goes back into its resource's lane, in event order: each is sent \
        right after the delivery its lane is working on now, ahead of later events still \
        waiting. Events the receiver already got stay delivered, so it may receive revived \
        ones after newer events of the same resource.";
    pub const REPLAY: &str = "Every retained event since the start that the endpoint's \
        subscriptions match becomes a new delivery (same webhook-id), queued through its \
        resource's lane in outbox order: one at a time per resource, oldest first. Events \
        already on their way to the endpoint are skipped; events of a resource already \
        waiting in its lane go before the replayed ones. To backfill a new endpoint exactly \
        in order, create it disabled and replay with \"enable\": it is enabled in the same \
        transaction that queues the last events, with routing paused, so nothing is missed \
        and nothing newer goes first.";
    pub const TEST: &str = "A new event of type outboxd.test goes to this endpoint only, \
        without a resource key: it waits for nothing and nothing waits for it. With an event \
        type whose catalog entry has an example, that example is its payload.";
}

/// Wakes the claimers: ours at once, the other replicas' through NOTIFY.
async fn wake_claimers(db: &crate::db::Conn, replica: &Replica) -> Result<(), Error> {
    db.execute(crate::sql::NOTIFY_DELIVERIES, &[]).await?;
    replica.work_ready.notify_one();
    Ok(())
}

fn conflict_for(d: &Delivery, action: &str) -> Error {
    let why = match d.status {
        Status::Held => match d.lane.as_ref().and_then(|l| l.waiting_behind) {
            Some(head) => {
                format!("it is held behind delivery {head}, the head of its lane: retry that one")
            }
            None => "it is held behind the head of its lane".to_owned(),
        },
        Status::Delivering => "it is in flight right now".to_owned(),
        Status::Succeeded => "it succeeded (resend it instead)".to_owned(),
        Status::Dead => "it is dead (retry it instead)".to_owned(),
        Status::Pending | Status::Retrying => "it is already pending".to_owned(),
    };
    Error::Conflict(format!("cannot {action} delivery {}: {why}", d.id))
}

/// Puts one finished delivery (in `from_state`: dead or succeeded) back in its lane; false
/// when it was no longer in that state.
async fn requeue_one(
    db: &crate::db::Conn,
    scope: &Scope,
    id: i64,
    from_state: &str,
) -> Result<bool, Error> {
    let row = db
        .query_one(
            q::DELIVERIES_REQUEUE,
            &[&vec![id], &from_state, &scope.tenant()],
        )
        .await?;
    Ok(col::<i64>(&row, "requeued")? > 0)
}

/// Runs an action on one delivery after checking its status allows it, wakes the claimers
/// and returns the delivery afterwards.
async fn act_on_delivery(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    id: i64,
    action: &str,
) -> Result<Delivery, Error> {
    let d = detail::delivery(db, scope, id).await?;
    let applied = match (action, d.status) {
        ("retry", Status::Dead) => requeue_one(db, scope, id, "dead").await?,
        ("retry", Status::Pending | Status::Retrying) => db
            .query_opt(q::DELIVERY_RETRY_NOW, &[&id, &scope.tenant()])
            .await?
            .is_some(),
        ("resend", Status::Succeeded) => requeue_one(db, scope, id, "succeeded").await?,
        _ => return Err(conflict_for(&d, action)),
    };
    if !applied {
        return Err(Error::Conflict(format!(
            "delivery {id} changed meanwhile; look again"
        )));
    }
    wake_claimers(db, replica).await?;
    tracing::info!(delivery_id = id, action, "event log: delivery action");
    detail::delivery(db, scope, id).await
}

/// Retry now: a dead delivery rejoins its lane; a pending or retrying lane head is due now.
/// Returns the delivery afterwards.
pub(crate) async fn retry(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    id: i64,
) -> Result<Delivery, Error> {
    act_on_delivery(db, replica, scope, id, "retry").await
}

/// Resend a succeeded delivery (same event, same `webhook-id`) through its lane.
pub(crate) async fn resend(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    id: i64,
) -> Result<Delivery, Error> {
    act_on_delivery(db, replica, scope, id, "resend").await
}

/// How many deliveries an action revived.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Revived {
    pub revived: i64,
}

/// Retry the dead deliveries of an endpoint: one (`delivery_id`), or all those whose event
/// was created in `[since, until)` (either bound may be open).
pub(crate) async fn retry_dead(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    endpoint_id: i64,
    delivery_id: Option<i64>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Revived, Error> {
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        return Err(Error::invalid("until", "must be later than since"));
    }
    // The endpoint must be in scope, even when it has nothing dead.
    super::health::endpoint(db, replica, scope, endpoint_id).await?;
    let ids: Vec<i64> = match delivery_id {
        Some(d) => {
            let found = detail::delivery(db, scope, d).await;
            match found {
                Ok(x) if x.endpoint_id == endpoint_id => vec![d],
                Ok(_) | Err(Error::NotFound(_)) => {
                    return Err(Error::NotFound(format!(
                        "delivery {d} of endpoint {endpoint_id} does not exist"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        None => db
            .query(
                q::ENDPOINT_DEAD_DELIVERIES,
                &[&endpoint_id, &since, &until, &scope.tenant()],
            )
            .await?
            .iter()
            .map(|r| col(r, "id"))
            .collect::<Result<_, _>>()?,
    };
    let revived: i64 = if ids.is_empty() {
        0
    } else {
        col(
            &db.query_one(q::DELIVERIES_REQUEUE, &[&ids, &"dead", &scope.tenant()])
                .await?,
            "requeued",
        )?
    };
    if revived > 0 {
        wake_claimers(db, replica).await?;
    }
    tracing::info!(endpoint_id, revived, "event log: dead deliveries revived");
    Ok(Revived { revived })
}

/// A test event queued for one endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TestEvent {
    pub event_id: String,
    pub delivery_id: i64,
    /// The event type whose catalog example is the payload; null: the generic test payload
    /// (no type asked for, or it has no registered example).
    pub example_of: Option<String>,
}

/// The longest event type name (`outbox.events.event_type`).
const MAX_TYPE_LEN: usize = 255;

/// Checks the event type a test event is asked to take its example from: an exact type
/// (no pattern), 1-255 characters, no control characters.
pub(crate) fn check_test_type(event_type: &str) -> Result<(), Error> {
    if event_type.is_empty() || event_type.chars().count() > MAX_TYPE_LEN {
        return Err(Error::invalid(
            "event_type",
            format!("must be 1 to {MAX_TYPE_LEN} characters"),
        ));
    }
    if event_type.contains('*') || event_type.chars().any(char::is_control) {
        return Err(Error::invalid(
            "event_type",
            "must be one exact event type such as order.paid (no pattern, no control characters)",
        ));
    }
    Ok(())
}

/// Queue an `outboxd.test` event for one enabled endpoint only. Its payload is the
/// catalog's example of `event_type` when that type is registered with one, else the
/// generic test payload.
pub(crate) async fn test_event(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    endpoint_id: i64,
    event_type: Option<&str>,
) -> Result<TestEvent, Error> {
    if let Some(t) = event_type {
        check_test_type(t)?;
    }
    let ep = super::health::endpoint(db, replica, scope, endpoint_id).await?;
    if !ep.enabled {
        return Err(Error::Conflict(format!(
            "endpoint {endpoint_id} is disabled: enable it first (a test event would wait)"
        )));
    }
    let row = db
        .query_opt(
            q::ENDPOINT_TEST_EVENT,
            &[&endpoint_id, &scope.tenant(), &event_type],
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} does not exist")))?;
    wake_claimers(db, replica).await?;
    let t = TestEvent {
        event_id: col(&row, "event_id")?,
        delivery_id: col(&row, "delivery_id")?,
        example_of: col(&row, "example_of")?,
    };
    tracing::info!(
        endpoint_id,
        delivery_id = t.delivery_id,
        example_of = t.example_of.as_deref().unwrap_or("(none)"),
        "event log: test event queued"
    );
    Ok(t)
}

/// Enable or disable an endpoint (`reason` is kept as its `disabled_reason`).
pub(crate) async fn set_enabled(
    db: &crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    endpoint_id: i64,
    enabled: bool,
    reason: Option<&str>,
) -> Result<(), Error> {
    db.query_opt(
        q::ENDPOINT_SET_ENABLED,
        &[&endpoint_id, &enabled, &reason, &scope.tenant()],
    )
    .await?
    .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} does not exist")))?;
    if enabled {
        // Its waiting deliveries are claimable again.
        wake_claimers(db, replica).await?;
    }
    tracing::info!(
        endpoint_id,
        enabled,
        "event log: endpoint enabled or disabled"
    );
    Ok(())
}

/// Start a secret rotation with a generated secret; returns it (shown this once). The old
/// secrets keep signing alongside until the rotation is finished.
pub(crate) async fn rotate_secret(
    db: &mut crate::db::Conn,
    scope: &Scope,
    endpoint_id: i64,
) -> Result<String, Error> {
    let tx = db.transaction().await?;
    tx.query_opt(q::ENDPOINT_LOCK, &[&endpoint_id, &scope.tenant()])
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} does not exist")))?;
    let row = tx
        .query_one(
            crate::sql::admin::ENDPOINT_ROTATE_SECRET,
            &[&endpoint_id, &None::<String>],
        )
        .await?;
    let secret: String = col(&row, "secret")?;
    tx.commit().await?;
    tracing::info!(endpoint_id, "event log: secret rotation started");
    Ok(secret)
}
