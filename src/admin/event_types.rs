//! `/v1/event-types`: the event-type catalog (`outbox.event_types`) and the types seen in the
//! outbox.
//!
//! The list has both kinds in name order: registered types (description, JSON Schema, example
//! payload, deprecated) and types that were published but never registered
//! (`"registered": false`); each with how many of its events were routed (`events_seen`, a
//! count the router maintains, so the list never scans `outbox.events`). `?registered=false`
//! lists only the unregistered ones: what publishers send that nobody documented.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiQuery, JsonBody, Patch, not_null, present, shorten};
use super::policy;
use super::validate;
use super::views::{DEFAULT_LIMIT, MAX_LIMIT, Page, col};
use crate::db::Queries;
use crate::sql::admin as q;

/// An event type as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventType {
    pub name: String,
    /// In `outbox.event_types`; false: only seen in the outbox.
    pub registered: bool,
    pub description: String,
    /// A JSON Schema of the payload, if registered with one.
    pub schema: Option<Value>,
    /// An example payload (what "send test event" and the portal use).
    pub example: Option<Value>,
    pub deprecated: bool,
    /// Events of this type routed so far.
    pub events_seen: i64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

fn ts(row: &Row, name: &str) -> Result<Option<String>, ApiError> {
    Ok(col::<Option<DateTime<Utc>>>(row, name)?
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)))
}

impl EventType {
    fn from_row(row: &Row) -> Result<EventType, ApiError> {
        Ok(EventType {
            name: col(row, "name")?,
            registered: col(row, "registered")?,
            description: col(row, "description")?,
            schema: col(row, "schema")?,
            example: col(row, "example")?,
            deprecated: col(row, "deprecated")?,
            events_seen: col(row, "events_seen")?,
            first_seen: ts(row, "first_seen")?,
            last_seen: ts(row, "last_seen")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
        })
    }
}

const CURSOR: &str = "event-types:";

fn encode_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR}{name}"))
}

fn decode_cursor(c: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix(CURSOR)
        .map(str::to_owned)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    registered: Option<bool>,
}

pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<EventType>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => String::new(),
        Some(c) => decode_cursor(c)
            .ok_or_else(|| ApiError::field("cursor", "not a cursor returned by this list"))?,
    };
    let db = s.db().await?;
    let rows = db
        .query(
            q::EVENT_TYPE_LIST,
            &[&after, &query.registered, &(limit + 1)],
        )
        .await?;
    let mut data = rows
        .iter()
        .map(EventType::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next_cursor = if more {
        data.last().map(|t| encode_cursor(&t.name))
    } else {
        None
    };
    Ok(Json(Page { data, next_cursor }))
}

fn name_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(n)| n)
        .map_err(|_| ApiError::NotFound("not an event type name".into()))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no event type {:?} is registered or was seen",
        shorten(name)
    ))
}

async fn fetch(db: &impl Queries, name: &str) -> Result<EventType, ApiError> {
    let row = db
        .on()
        .query_opt(q::EVENT_TYPE_GET, &[&name])
        .await?
        .ok_or_else(|| not_found(name))?;
    EventType::from_row(&row)
}

pub async fn get(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<EventType>, ApiError> {
    let name = name_of(name)?;
    let db = s.db().await?;
    Ok(Json(fetch(&*db, &name).await?))
}

/// A JSON Schema is an object or a boolean; `null` means none.
fn schema(field: &str, v: Option<Value>) -> Result<Option<Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v @ (Value::Object(_) | Value::Bool(_))) => Ok(Some(v)),
        Some(_) => Err(ApiError::field(
            field,
            "a JSON Schema is an object (or true/false)",
        )),
    }
}

fn example(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEventType {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    schema: Option<Value>,
    #[serde(default)]
    example: Option<Value>,
    #[serde(default)]
    deprecated: Option<bool>,
}

pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateEventType>,
) -> Result<Response, ApiError> {
    policy::event_type_name("name", &req.name)?;
    let description = req.description.unwrap_or_default();
    validate::text("description", &description)?;
    let schema = schema("schema", req.schema)?;
    let example = example(req.example);
    let deprecated = req.deprecated.unwrap_or(false);
    let db = s.db().await?;
    let inserted = db
        .query_opt(
            q::EVENT_TYPE_INSERT,
            &[&req.name, &description, &schema, &example, &deprecated],
        )
        .await?;
    if inserted.is_none() {
        return Err(ApiError::Conflict(format!(
            "event type {:?} is already registered (PATCH it instead)",
            shorten(&req.name)
        )));
    }
    let created = fetch(&*db, &req.name).await?;
    tracing::info!(event_type = %created.name, "admin API: event type registered");
    let location = format!("/v1/event-types/{}", created.name);
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEventType {
    #[serde(default, deserialize_with = "present")]
    description: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    schema: Patch<Value>,
    #[serde(default, deserialize_with = "present")]
    example: Patch<Value>,
    #[serde(default, deserialize_with = "present")]
    deprecated: Patch<bool>,
    /// Refused: register the new name instead.
    #[serde(default, deserialize_with = "present")]
    name: Patch<Value>,
}

pub async fn patch(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    JsonBody(req): JsonBody<PatchEventType>,
) -> Result<Json<EventType>, ApiError> {
    let name = name_of(name)?;
    if req.name.is_some() {
        return Err(ApiError::field(
            "name",
            "cannot be changed; register the new name and deprecate this one",
        ));
    }
    let description = not_null("description", req.description)?;
    if let Some(d) = &description {
        validate::text("description", d)?;
    }
    let new_schema = req.schema.map(|v| schema("schema", v)).transpose()?;
    let deprecated = not_null("deprecated", req.deprecated)?;
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    let current = tx
        .query_opt(q::EVENT_TYPE_LOCK, &[&name])
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "event type {:?} is not registered (POST /v1/event-types registers it)",
                shorten(&name)
            ))
        })?;
    let description = match description {
        Some(d) => d,
        None => col(&current, "description")?,
    };
    let schema: Option<Value> = match new_schema {
        Some(v) => v,
        None => col(&current, "schema")?,
    };
    let example: Option<Value> = match req.example {
        Some(v) => example(v),
        None => col(&current, "example")?,
    };
    let deprecated = match deprecated {
        Some(d) => d,
        None => col(&current, "deprecated")?,
    };
    let unchanged = description == col::<String>(&current, "description")?
        && schema == col::<Option<Value>>(&current, "schema")?
        && example == col::<Option<Value>>(&current, "example")?
        && deprecated == col::<bool>(&current, "deprecated")?;
    if unchanged {
        // Nothing changes: no write, no new updated_at.
        let same = fetch(&tx, &name).await?;
        tx.commit().await?;
        return Ok(Json(same));
    }
    tx.query_one(
        q::EVENT_TYPE_UPDATE,
        &[&name, &description, &schema, &example, &deprecated],
    )
    .await?;
    let updated = fetch(&tx, &name).await?;
    tx.commit().await?;
    tracing::info!(event_type = %name, "admin API: event type changed");
    Ok(Json(updated))
}

pub async fn delete(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let name = name_of(name)?;
    let db = s.db().await?;
    db.query_opt(q::EVENT_TYPE_DELETE, &[&name])
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("event type {:?} is not registered", shorten(&name)))
        })?;
    tracing::info!(event_type = %name, "admin API: event type unregistered");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_names_with_any_character() {
        for name in ["order.paid", "a/b", "ünïcode", ""] {
            assert_eq!(decode_cursor(&encode_cursor(name)).as_deref(), Some(name));
        }
        assert_eq!(decode_cursor("garbage!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("endpoints:5")), None);
    }

    #[test]
    fn schemas_are_objects_or_booleans() {
        assert_eq!(schema("schema", None).unwrap(), None);
        assert_eq!(schema("schema", Some(Value::Null)).unwrap(), None);
        assert!(schema("schema", Some(serde_json::json!({"type": "object"}))).is_ok());
        assert!(schema("schema", Some(Value::Bool(true))).is_ok());
        let e = schema("schema", Some(serde_json::json!("object"))).unwrap_err();
        assert!(e.to_string().starts_with("schema: "), "{e}");
    }
}
