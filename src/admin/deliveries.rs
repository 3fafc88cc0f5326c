//! Read-only views: `/v1/deliveries` and `/v1/events/{event_id}`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, shorten};
use super::views::{Attempt, Delivery, Event, Page, PageStart};
use crate::sql::admin as q;

const KIND: &str = "deliveries";
const STATES: &[&str] = &["pending", "delivering", "succeeded", "dead"];
/// `GET /v1/events/{event_id}` shows this many of the event's most recent attempts.
pub const MAX_EVENT_ATTEMPTS: i64 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–500, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    endpoint_id: Option<i64>,
    /// `pending`, `delivering`, `succeeded` or `dead`.
    state: Option<String>,
}

/// List deliveries in id order (oldest first). For the newest first, searchable, see
/// `GET /v1/events`.
#[utoipa::path(get, operation_id = "list_deliveries", path = "/v1/deliveries", tag = "deliveries", params(ListQuery),
    responses((status = 200, description = "OK", body = Page<Delivery>), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    let start = PageStart::parse(KIND, query.limit, query.cursor.as_deref())?;
    if let Some(state) = &query.state
        && !STATES.contains(&state.as_str())
    {
        return Err(ApiError::field(
            "state",
            format!(
                "must be one of {}, got {:?}",
                STATES.join(", "),
                shorten(state)
            ),
        ));
    }
    let db = s.db().await?;
    let rows = db
        .query(
            q::DELIVERY_LIST,
            &[
                &start.after,
                &query.endpoint_id,
                &query.state,
                &start.fetch(),
            ],
        )
        .await?;
    let data = rows
        .iter()
        .map(Delivery::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(start.page(data, |d| d.id, KIND)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    event: Event,
    deliveries: Vec<Delivery>,
    /// The most recent attempts (at most [`MAX_EVENT_ATTEMPTS`]), oldest first.
    attempts: Vec<Attempt>,
}

/// One event (without its payload), its deliveries and its latest 500 attempts.
#[utoipa::path(get, operation_id = "get_event", path = "/v1/events/{event_id}", tag = "events",
    params(("event_id" = String, Path)),
    responses((status = 200, description = "OK", body = EventDetail), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn event(
    State(s): State<AppState>,
    event_id: Result<Path<String>, PathRejection>,
) -> Result<Json<EventDetail>, ApiError> {
    let Ok(Path(event_id)) = event_id else {
        return Err(ApiError::NotFound("not an event_id".into()));
    };
    let not_found = || {
        ApiError::NotFound(format!(
            "no event with event_id {:?} (or it was removed by retention)",
            shorten(&event_id)
        ))
    };
    let db = s.db().await?;
    let row = db
        .query_opt(q::EVENT_GET, &[&event_id])
        .await?
        .ok_or_else(not_found)?;
    let event = Event::from_row(&row)?;
    let deliveries = db
        .query(q::EVENT_DELIVERIES, &[&event.id])
        .await?
        .iter()
        .map(Delivery::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let attempts = db
        .query(q::EVENT_ATTEMPTS, &[&event_id, &MAX_EVENT_ATTEMPTS])
        .await?
        .iter()
        .map(Attempt::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(EventDetail {
        event,
        deliveries,
        attempts,
    }))
}
