//! The event log, read over `/v1`: `GET /v1/events` (the console's search),
//! `GET /v1/events/{event_id}/payload` (`GET /v1/event-types`: `super::event_types`). The queries are the event
//! log's ([`crate::eventlog`]), the same the console runs.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use crate::eventlog::{self, EventPage, Scope, Status, search};

/// `GET /v1/events`: the search. Every parameter is optional; they combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// An `event_id` or a `resource_key` (exact), or `type:<pattern>` (e.g. `type:order.*`).
    q: Option<String>,
    /// An event type, exact (`order.paid`) or a pattern (`order.*`).
    event_type: Option<String>,
    tenant_id: Option<String>,
    /// Events with a delivery to this endpoint.
    endpoint_id: Option<i64>,
    /// Events with a delivery in this status: `pending`, `held` (behind its lane head),
    /// `retrying`, `delivering` (in flight), `succeeded`, `dead`.
    status: Option<String>,
    /// Created at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// 1–200, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Search events, newest first, with each one's deliveries (status, attempts, last error
/// kind). Each search is answered from an index; see the README's "Console" section.
#[utoipa::path(get, operation_id = "search_events", path = "/v1/events", tag = "events", params(SearchQuery),
    responses((status = 200, description = "OK", body = EventPage), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn search(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(Status::parse)
        .transpose()?;
    let filter = search::Search {
        q: query.q,
        event_type: query.event_type,
        tenant_id: query.tenant_id,
        endpoint_id: query.endpoint_id,
        status,
        from: query.from,
        to: query.to,
    };
    let db = s.db().await?;
    let page = search::search(
        &db,
        &Scope::Operator,
        &filter,
        query.cursor.as_deref(),
        query.limit.unwrap_or(search::DEFAULT_LIMIT),
    )
    .await?;
    Ok(Json(page))
}

/// The payload of an event exactly as it is sent (`application/json`).
#[utoipa::path(get, operation_id = "get_event_payload", path = "/v1/events/{event_id}/payload", tag = "events",
    params(("event_id" = String, Path)),
    responses((status = 200, description = "OK", content_type = "application/json", body = Object),
              (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn payload(
    State(s): State<AppState>,
    event_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Ok(Path(event_id)) = event_id else {
        return Err(ApiError::NotFound("not an event_id".into()));
    };
    let db = s.db().await?;
    let body = eventlog::detail::payload(&db, &Scope::Operator, &event_id).await?;
    let mut r = body.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
