//! The event log's actions over `/v1`, the same the console's buttons run
//! ([`crate::eventlog::actions`], [`crate::eventlog::replay`]): one delivery with its attempts,
//! retry, resend, retry the dead of an endpoint, replay to an endpoint, a test event, an
//! endpoint's health.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Id, JsonBody, OptionalJsonBody};
use crate::eventlog::actions::{Revived, TestEvent};
use crate::eventlog::replay::{Replay, Replayed};
use crate::eventlog::{self, Delivery, EndpointHealth, Scope};

impl From<eventlog::Error> for ApiError {
    fn from(e: eventlog::Error) -> ApiError {
        match e {
            eventlog::Error::NotFound(m) => ApiError::NotFound(m),
            eventlog::Error::Conflict(m) => ApiError::Conflict(m),
            eventlog::Error::Invalid { field, message } => ApiError::field(field, message),
            eventlog::Error::Db(e) => e.into(),
            eventlog::Error::Pool(e) => e.into(),
            eventlog::Error::Unavailable => ApiError::Unavailable,
            eventlog::Error::Internal => ApiError::Internal,
        }
    }
}

/// One delivery with its latest attempts (newest first) and, when it is held, what it waits
/// behind.
#[utoipa::path(get, operation_id = "get_delivery", path = "/v1/deliveries/{id}", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Delivery), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn delivery(State(s): State<AppState>, Id(id): Id) -> Result<Json<Delivery>, ApiError> {
    let db = s.db().await?;
    Ok(Json(
        eventlog::detail::delivery(&db, &Scope::Operator, id).await?,
    ))
}

/// Retry now. A dead delivery goes back into its lane: it is sent right after the delivery
/// that lane is working on now, ahead of later events of the same resource still waiting. A
/// pending or retrying one that leads its lane is made due now. A held one cannot jump its
/// lane (409 names the delivery it waits behind); nor can one in flight or succeeded.
#[utoipa::path(post, operation_id = "retry_delivery", path = "/v1/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the delivery afterwards", body = Delivery),
              (status = 404, description = "No such resource", body = ErrorBody), (status = 409, description = "Conflicts with its current state", body = ErrorBody)))]
pub async fn retry(State(s): State<AppState>, Id(id): Id) -> Result<Json<Delivery>, ApiError> {
    let db = s.db().await?;
    let d = eventlog::actions::retry(&db, &s.replica, &Scope::Operator, id).await?;
    Ok(Json(d))
}

/// Resend a succeeded delivery: the same event with the same `webhook-id`, through its lane
/// (right after the delivery the lane is working on now). 409 unless it succeeded.
#[utoipa::path(post, operation_id = "resend_delivery", path = "/v1/deliveries/{id}/resend", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the delivery afterwards", body = Delivery),
              (status = 404, description = "No such resource", body = ErrorBody), (status = 409, description = "Conflicts with its current state", body = ErrorBody)))]
pub async fn resend(State(s): State<AppState>, Id(id): Id) -> Result<Json<Delivery>, ApiError> {
    let db = s.db().await?;
    let d = eventlog::actions::resend(&db, &s.replica, &Scope::Operator, id).await?;
    Ok(Json(d))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDead {
    /// Only this delivery.
    #[serde(default)]
    delivery_id: Option<i64>,
    /// Only dead deliveries of events created at or after this.
    #[serde(default)]
    since: Option<DateTime<Utc>>,
    /// … and before this.
    #[serde(default)]
    until: Option<DateTime<Utc>>,
}

/// Retry the dead deliveries of an endpoint: all of them, those of events created in
/// `[since, until)`, or one (`delivery_id`). Each goes back into its lane, in event order.
#[utoipa::path(post, operation_id = "retry_dead_deliveries", path = "/v1/endpoints/{id}/retry-dead", tag = "endpoints",
    params(("id" = i64, Path)), request_body(content = Option<RetryDead>),
    responses((status = 200, description = "OK", body = Revived), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn retry_dead(
    State(s): State<AppState>,
    Id(id): Id,
    OptionalJsonBody(req): OptionalJsonBody<RetryDead>,
) -> Result<Json<Revived>, ApiError> {
    if req.delivery_id.is_some() && (req.since.is_some() || req.until.is_some()) {
        return Err(ApiError::field(
            "delivery_id",
            "give either delivery_id or a time range, not both",
        ));
    }
    let db = s.db().await?;
    let revived = eventlog::actions::retry_dead(
        &db,
        &s.replica,
        &Scope::Operator,
        id,
        req.delivery_id,
        req.since,
        req.until,
    )
    .await?;
    Ok(Json(revived))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Replay events created at or after this (RFC 3339).
    since: DateTime<Utc>,
    /// … and before this.
    #[serde(default)]
    until: Option<DateTime<Utc>>,
    /// Only these types (exact or patterns), among those the subscriptions match.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    /// Enable the endpoint in the transaction that queues the last events, with routing
    /// paused: the exact backfill of a new endpoint created disabled. Not with `until`.
    #[serde(default)]
    enable: bool,
}

/// Replay to an endpoint every retained event since `since` that its active subscriptions
/// match (and its tenancy allows): each becomes a new delivery, same `webhook-id`, queued
/// through its resource's lane in outbox order. Events already on their way to it are
/// skipped, so a replay cut short can be run again. Answers when everything is queued
/// (roughly 50 000 events a second are looked at).
#[utoipa::path(post, operation_id = "replay_to_endpoint", path = "/v1/endpoints/{id}/replay", tag = "endpoints",
    params(("id" = i64, Path)), request_body = ReplayRequest,
    responses((status = 200, description = "OK", body = Replayed), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 404, description = "No such resource", body = ErrorBody), (status = 409, description = "Conflicts with its current state", body = ErrorBody)))]
pub async fn replay(
    State(s): State<AppState>,
    Id(id): Id,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<Json<Replayed>, ApiError> {
    let r = Replay {
        since: req.since,
        until: req.until,
        event_types: req.event_types,
        enable: req.enable,
    };
    let db = s.db().await?;
    let done =
        eventlog::replay::replay_detached(db, s.replica.clone(), Scope::Operator, id, r).await?;
    Ok(Json(done))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestEventRequest {
    /// An exact event type: when the catalog has an example payload for it, the test event
    /// carries that example (see `example_of` in the answer).
    #[serde(default)]
    event_type: Option<String>,
}

/// Send a test event (type `outboxd.test`) to this endpoint only; with `event_type`, its
/// payload is that type's example from the catalog (`/v1/event-types`) when there is one.
/// 409 when the endpoint is disabled.
#[utoipa::path(post, operation_id = "send_test_event", path = "/v1/endpoints/{id}/test", tag = "endpoints",
    params(("id" = i64, Path)), request_body(content = Option<TestEventRequest>),
    responses((status = 202, description = "Accepted: queued", body = TestEvent), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 404, description = "No such resource", body = ErrorBody),
              (status = 409, description = "Conflicts with its current state", body = ErrorBody)))]
pub async fn test_event(
    State(s): State<AppState>,
    Id(id): Id,
    OptionalJsonBody(req): OptionalJsonBody<TestEventRequest>,
) -> Result<(StatusCode, Json<TestEvent>), ApiError> {
    let db = s.db().await?;
    let t = eventlog::actions::test_event(
        &db,
        &s.replica,
        &Scope::Operator,
        id,
        req.event_type.as_deref(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(t)))
}

/// An endpoint's health: backlog, dead, the last hour's success rate and last error, and its
/// circuit breaker as this replica sees it.
#[utoipa::path(get, operation_id = "get_endpoint_health", path = "/v1/endpoints/{id}/health", tag = "endpoints",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = EndpointHealth), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn health(
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<Json<EndpointHealth>, ApiError> {
    let db = s.db().await?;
    Ok(Json(
        eventlog::health::endpoint(&db, &s.replica, &Scope::Operator, id).await?,
    ))
}
