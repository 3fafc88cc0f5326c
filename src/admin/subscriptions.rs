//! `/v1/subscriptions`: list, create, read, change, delete.

use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, sql_state};
use super::extract::{ApiQuery, Id, JsonBody, Patch, not_null, present};
use super::views::{Page, PageStart, Subscription, col};
use super::{policy, validate};
use crate::sql::admin as q;

const KIND: &str = "subscriptions";

fn one(row: Option<Row>, id: i64) -> Result<Row, ApiError> {
    row.ok_or_else(|| ApiError::NotFound(format!("subscription {id} does not exist")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–500, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only this endpoint's subscriptions.
    endpoint_id: Option<i64>,
}

/// List subscriptions, in id order.
#[utoipa::path(get, operation_id = "list_subscriptions", path = "/v1/subscriptions", tag = "subscriptions", params(ListQuery),
    responses((status = 200, description = "OK", body = Page<Subscription>), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Subscription>>, ApiError> {
    let start = PageStart::parse(KIND, query.limit, query.cursor.as_deref())?;
    let db = s.db().await?;
    let rows = db
        .query(
            q::SUBSCRIPTION_LIST,
            &[&start.after, &query.endpoint_id, &start.fetch()],
        )
        .await?;
    let data = rows
        .iter()
        .map(Subscription::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(start.page(data, |x| x.id, KIND)))
}

#[utoipa::path(get, operation_id = "get_subscription", path = "/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Subscription), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, Id(id): Id) -> Result<Json<Subscription>, ApiError> {
    let db = s.db().await?;
    let row = one(db.query_opt(q::SUBSCRIPTION_GET, &[&id]).await?, id)?;
    Ok(Json(Subscription::from_row(&row)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    endpoint_id: i64,
    event_types: Vec<String>,
    #[serde(default)]
    active: Option<bool>,
    /// A content filter (SQL/JSON path over the payload); absent or null: none.
    #[serde(default)]
    filter: Option<String>,
}

/// Bind an endpoint to event-type patterns.
#[utoipa::path(post, operation_id = "create_subscription", path = "/v1/subscriptions", tag = "subscriptions",
    request_body = CreateSubscription,
    responses((status = 201, description = "Created", body = Subscription), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateSubscription>,
) -> Result<Response, ApiError> {
    validate::event_types("event_types", &req.event_types)?;
    let active = req.active.unwrap_or(true);
    let db = s.db().await?;
    if let Some(f) = &req.filter {
        policy::filter(&*db, "filter", f).await?;
    }
    let row = db
        .query_one(
            q::SUBSCRIPTION_INSERT,
            &[&req.endpoint_id, &req.event_types, &active, &req.filter],
        )
        .await
        .map_err(|e| {
            if sql_state(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                ApiError::field(
                    "endpoint_id",
                    format!("endpoint {} does not exist", req.endpoint_id),
                )
            } else {
                e.into()
            }
        })?;
    let sub = Subscription::from_row(&row)?;
    tracing::info!(
        subscription_id = sub.id,
        endpoint_id = sub.endpoint_id,
        "admin API: subscription created"
    );
    let location = format!("/v1/subscriptions/{}", sub.id);
    let mut response = (StatusCode::CREATED, Json(sub)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSubscription {
    #[serde(default, deserialize_with = "present")]
    event_types: Patch<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    active: Patch<bool>,
    /// `null` removes the filter.
    #[serde(default, deserialize_with = "present")]
    filter: Patch<String>,
    /// Refused: a subscription stays with its endpoint.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    endpoint_id: Patch<serde_json::Value>,
}

/// Change a subscription's patterns or `active`.
#[utoipa::path(patch, operation_id = "update_subscription", path = "/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path)), request_body = PatchSubscription,
    responses((status = 200, description = "OK", body = Subscription), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Id(id): Id,
    JsonBody(req): JsonBody<PatchSubscription>,
) -> Result<Json<Subscription>, ApiError> {
    if req.endpoint_id.is_some() {
        return Err(ApiError::field(
            "endpoint_id",
            "cannot be changed; create a subscription for the other endpoint instead",
        ));
    }
    let event_types = not_null("event_types", req.event_types)?;
    if let Some(t) = &event_types {
        validate::event_types("event_types", t)?;
    }
    let active = not_null("active", req.active)?;
    let mut db = s.db().await?;
    if let Some(Some(f)) = &req.filter {
        policy::filter(&*db, "filter", f).await?;
    }
    let tx = db.transaction().await?;
    let current = one(tx.query_opt(q::SUBSCRIPTION_LOCK, &[&id]).await?, id)?;
    let (old_types, old_active, old_filter): (Vec<String>, bool, Option<String>) = (
        col(&current, "event_types")?,
        col(&current, "active")?,
        col(&current, "filter")?,
    );
    let event_types = event_types.unwrap_or_else(|| old_types.clone());
    let active = active.unwrap_or(old_active);
    let filter = req.filter.unwrap_or_else(|| old_filter.clone());
    if (&event_types, active, &filter) == (&old_types, old_active, &old_filter) {
        // Nothing changes: no write, no new updated_at.
        tx.commit().await?;
        return Ok(Json(Subscription::from_row(&current)?));
    }
    let row = tx
        .query_one(
            q::SUBSCRIPTION_UPDATE,
            &[&id, &event_types, &active, &filter],
        )
        .await?;
    tx.commit().await?;
    tracing::info!(subscription_id = id, "admin API: subscription changed");
    Ok(Json(Subscription::from_row(&row)?))
}

#[utoipa::path(delete, operation_id = "delete_subscription", path = "/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path)),
    responses((status = 204, description = "Done, no content"), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    let db = s.db().await?;
    one(db.query_opt(q::SUBSCRIPTION_DELETE, &[&id]).await?, id)?;
    tracing::info!(subscription_id = id, "admin API: subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}
