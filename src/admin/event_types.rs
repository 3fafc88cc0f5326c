//! `/v1/event-types`: the event-type catalog and the types seen in the outbox, one list.
//!
//! Both live in `outbox.event_types` (V9's per-tenant counts, extended by V14): a type is
//! registered once for every tenant (description, JSON Schema, example payload, deprecated) by
//! `outbox.register_event_type`, which this API calls too; a type only seen is listed with
//! `"registered": false` and its counts, so publishers' undocumented types show up. The
//! catalog documents; it does not gate publishing, except that with
//! `OUTBOXD_STRICT_EVENT_TYPES=true` the router creates the deliveries of unregistered types
//! dead (`crate::router`).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, JsonBody, shorten};
use super::views::col;
use crate::sql::admin as q;

/// An event type: its catalog entry, if registered, and how many of its events were routed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventType {
    /// The exact type name.
    pub event_type: String,
    /// In the catalog; false: only seen in the outbox.
    pub registered: bool,
    pub registered_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
    /// A JSON Schema of the payload (documentation: payloads are not validated).
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// An example payload.
    #[schema(value_type = Option<Object>)]
    pub example: Option<Value>,
    pub deprecated: bool,
    /// Events of this type routed (in scope: one tenant's, or all tenants' summed).
    pub events: i64,
    /// When the first and the last of them were routed; null when none was.
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

impl EventType {
    fn from_row(row: &Row) -> Result<EventType, ApiError> {
        Ok(EventType {
            event_type: col(row, "name")?,
            registered: col(row, "registered")?,
            registered_at: col(row, "registered_at")?,
            description: col(row, "description")?,
            schema: col(row, "schema")?,
            example: col(row, "example")?,
            deprecated: col(row, "deprecated")?,
            events: col(row, "events")?,
            first_seen: col(row, "first_seen")?,
            last_seen: col(row, "last_seen")?,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this tenant's counts (registered types are listed for every tenant).
    tenant_id: Option<String>,
    /// Only registered types (`true`) or only types seen but not registered (`false`).
    registered: Option<bool>,
    /// At most this many types (1–10 000, default 1 000), alphabetically.
    limit: Option<i64>,
}

/// The event types.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypes {
    data: Vec<EventType>,
}

/// The catalog and the types seen, alphabetically: registered types with their documentation,
/// and types published but never registered (`registered: false`), each with its counts.
#[utoipa::path(get, operation_id = "list_event_types", path = "/v1/event-types", tag = "events", params(ListQuery),
    responses((status = 200, description = "OK", body = EventTypes), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<EventTypes>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and 10000, got {limit}"),
        ));
    }
    let tenant = query.tenant_id.filter(|t| !t.is_empty());
    let db = s.db().await?;
    let data = db
        .query(
            q::EVENT_TYPE_LIST,
            &[&"", &tenant, &query.registered, &limit, &None::<String>],
        )
        .await?
        .iter()
        .map(EventType::from_row)
        .collect::<Result<_, _>>()?;
    Ok(Json(EventTypes { data }))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "event type {:?} is neither registered nor seen",
        shorten(name)
    ))
}

async fn one(db: &crate::db::Conn, name: &str) -> Result<Option<EventType>, ApiError> {
    db.query_opt(
        q::EVENT_TYPE_LIST,
        &[
            &"",
            &None::<String>,
            &None::<bool>,
            &1i64,
            &Some(name.to_owned()),
        ],
    )
    .await?
    .as_ref()
    .map(EventType::from_row)
    .transpose()
}

/// One event type, registered or only seen.
#[utoipa::path(get, operation_id = "get_event_type", path = "/v1/event-types/{name}", tag = "events", params(("name" = String, Path)),
    responses((status = 200, description = "OK", body = EventType), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<EventType>, ApiError> {
    let Ok(Path(name)) = name else {
        return Err(ApiError::NotFound("not an event type name".into()));
    };
    let db = s.db().await?;
    Ok(Json(
        one(&db, &name).await?.ok_or_else(|| not_found(&name))?,
    ))
}

/// What a registration says about a type. Every field may be left out (null: none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEventType {
    description: Option<String>,
    /// A JSON Schema document (an object or a boolean).
    #[schema(value_type = Option<Object>)]
    schema: Option<Value>,
    /// An example payload.
    #[schema(value_type = Option<Object>)]
    example: Option<Value>,
    #[serde(default)]
    deprecated: bool,
}

/// Longest description accepted (the column's CHECK).
const MAX_DESCRIPTION: usize = 10_000;

/// Register an event type, or replace its catalog entry (201 when it is new). Exact names only.
#[utoipa::path(put, operation_id = "register_event_type", path = "/v1/event-types/{name}", tag = "events", params(("name" = String, Path)),
    request_body = RegisterEventType,
    responses((status = 200, description = "Updated", body = EventType), (status = 201, description = "Registered", body = EventType),
              (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn register(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<RegisterEventType>,
) -> Result<Response, ApiError> {
    let Ok(Path(name)) = name else {
        return Err(ApiError::NotFound("not an event type name".into()));
    };
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if let Some(schema) = &req.schema
        && !(schema.is_object() || schema.is_boolean())
    {
        return Err(ApiError::field(
            "schema",
            "must be a JSON Schema: an object or a boolean",
        ));
    }
    let db = s.db().await?;
    let created: bool = match db
        .query_one(
            q::EVENT_TYPE_REGISTER,
            &[
                &name,
                &req.description,
                &req.schema,
                &req.example,
                &req.deprecated,
            ],
        )
        .await
    {
        Ok(row) => col(&row, "created")?,
        // The function's own checks (the name's shape): its message names the rule.
        Err(e) if e.as_db_error().map(|d| d.code()) == Some(&SqlState::INVALID_PARAMETER_VALUE) => {
            let message = e
                .as_db_error()
                .map(|d| d.message().to_owned())
                .unwrap_or_default();
            return Err(ApiError::field("name", message));
        }
        Err(e) => return Err(e.into()),
    };
    let entry = one(&db, &name).await?.ok_or_else(|| not_found(&name))?;
    tracing::info!(event_type = %name, created, "admin API: event type registered");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry)).into_response())
}

/// Remove an event type from the catalog; its counts stay (it is then listed as seen only).
#[utoipa::path(delete, operation_id = "unregister_event_type", path = "/v1/event-types/{name}", tag = "events", params(("name" = String, Path)),
    responses((status = 204, description = "Done, no content"), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn unregister(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Ok(Path(name)) = name else {
        return Err(ApiError::NotFound("not an event type name".into()));
    };
    let db = s.db().await?;
    let removed: bool = col(
        &db.query_one(q::EVENT_TYPE_UNREGISTER, &[&name]).await?,
        "removed",
    )?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "event type {:?} is not registered",
            shorten(&name)
        )));
    }
    tracing::info!(event_type = %name, "admin API: event type unregistered");
    Ok(StatusCode::NO_CONTENT)
}
