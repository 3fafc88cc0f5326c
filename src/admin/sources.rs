//! `/v1/sources`: inbound webhook sources (README "Receiving webhooks"): list, create, read,
//! change, delete, and replay a time range of a source's stored requests. A source is named
//! in its path by its name, the same name as in `/in/{name}` on the inbound listener.
//!
//! Secrets are write-only: given on create (`secret`), replaced as a list on PATCH (`secrets`,
//! newest first: several verify at once during a rotation), never shown (`secret_count`).
//! The verification, key and scheme rules are the inbound listener's own
//! ([`crate::inbound::verify`], [`crate::inbound::keys`]), so what is accepted here is what
//! the listener can use.
//!
//! Request and response types are plain serde structs, one per body, so that OpenAPI
//! annotations (utoipa `ToSchema`, `#[utoipa::path]`) can be added to them as they are.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, sql_state};
use super::extract::{ApiQuery, JsonBody, Patch, not_null, present, shorten};
use super::validate;
use super::views::{Page, PageStart, col, ts};
use crate::db::Tx;
use crate::inbound::keys::KeyExpr;
use crate::inbound::verify::{Scheme, Verifier};
use crate::sql::admin as q;

const KIND: &str = "sources";
/// `outbox.sources.max_body_bytes`: default 1 MiB, hard cap 20 MiB.
pub const DEFAULT_MAX_BODY_BYTES: i32 = 1 << 20;
pub const MAX_BODY_BYTES_CAP: i64 = 20 << 20;
/// `outbox.sources.tolerance_seconds` default.
pub const DEFAULT_TOLERANCE_SECONDS: i32 = 300;
const MAX_SECRETS: usize = 10;

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("source {:?} does not exist", shorten(name)))
}

/// A source as the API shows it: everything but its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    pub id: i64,
    pub name: String,
    /// Where providers send: `POST /in/{name}` on the inbound listener.
    pub path: String,
    pub verify: String,
    pub secret_count: i32,
    pub signature_header: Option<String>,
    pub tolerance_seconds: i32,
    pub ordering_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub event_type: Option<String>,
    pub tenant_id: Option<String>,
    pub max_body_bytes: i32,
    pub rate_limit: Option<f64>,
    pub get_challenge: Option<String>,
    pub enabled: bool,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Source {
    fn from_row(row: &Row) -> Result<Source, ApiError> {
        let name: String = col(row, "name")?;
        Ok(Source {
            id: col(row, "id")?,
            path: format!("/in/{name}"),
            name,
            verify: col(row, "verify")?,
            secret_count: col(row, "secret_count")?,
            signature_header: col(row, "signature_header")?,
            tolerance_seconds: col(row, "tolerance_seconds")?,
            ordering_key: col(row, "ordering_key")?,
            idempotency_key: col(row, "idempotency_key")?,
            event_type: col(row, "event_type")?,
            tenant_id: col(row, "tenant_id")?,
            max_body_bytes: col(row, "max_body_bytes")?,
            rate_limit: col(row, "rate_limit")?,
            get_challenge: col(row, "get_challenge")?,
            enabled: col(row, "enabled")?,
            description: col(row, "description")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
        })
    }
}

/// The settable columns of a source, as `source_insert.sql` and `source_update.sql` write them.
#[derive(Debug, Clone, PartialEq)]
struct Settable {
    verify: String,
    secrets: Vec<String>,
    signature_header: Option<String>,
    tolerance_seconds: i32,
    ordering_key: Option<String>,
    idempotency_key: Option<String>,
    event_type: Option<String>,
    tenant_id: Option<String>,
    max_body_bytes: i32,
    rate_limit: Option<f64>,
    get_challenge: Option<String>,
    enabled: bool,
    description: String,
}

impl Settable {
    fn from_row(row: &Row) -> Result<Settable, ApiError> {
        Ok(Settable {
            verify: col(row, "verify")?,
            secrets: col(row, "secrets")?,
            signature_header: col(row, "signature_header")?,
            tolerance_seconds: col(row, "tolerance_seconds")?,
            ordering_key: col(row, "ordering_key")?,
            idempotency_key: col(row, "idempotency_key")?,
            event_type: col(row, "event_type")?,
            tenant_id: col(row, "tenant_id")?,
            max_body_bytes: col(row, "max_body_bytes")?,
            rate_limit: col(row, "rate_limit")?,
            get_challenge: col(row, "get_challenge")?,
            enabled: col(row, "enabled")?,
            description: col(row, "description")?,
        })
    }

    /// What only the whole row can tell: the scheme's secrets parse and suffice.
    fn check(&self, secrets_field: &str) -> Result<(), ApiError> {
        let scheme = scheme("verify", &self.verify)?;
        if self.secrets.len() > MAX_SECRETS {
            return Err(ApiError::field(
                secrets_field,
                format!("at most {MAX_SECRETS} secrets are active at once"),
            ));
        }
        // The Standard Webhooks specification's secrets: whsec_ and 24 to 64 bytes, as for
        // endpoints. Other schemes take the provider's secret as it is.
        if scheme == Scheme::StandardWebhooks {
            for secret in &self.secrets {
                validate::secret(secrets_field, secret)?;
            }
        }
        Verifier::new(
            scheme,
            &self.secrets,
            self.signature_header.as_deref(),
            self.tolerance_seconds.into(),
        )
        .map(|_| ())
        .map_err(|e| ApiError::field(secrets_field, e))
    }

    /// Parameters $2.. of `source_insert.sql` / `source_update.sql`, after $1 the name.
    async fn write(
        &self,
        tx: &Tx<'_>,
        query: &str,
        name: &str,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        tx.query_opt(
            query,
            &[
                &name,
                &self.verify,
                &self.secrets,
                &self.signature_header,
                &self.tolerance_seconds,
                &self.ordering_key,
                &self.idempotency_key,
                &self.event_type,
                &self.tenant_id,
                &self.max_body_bytes,
                &self.rate_limit,
                &self.get_challenge,
                &self.enabled,
                &self.description,
            ],
        )
        .await
    }
}

fn scheme(field: &str, s: &str) -> Result<Scheme, ApiError> {
    Scheme::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::field(field, format!("must be one of {}", names.join(", ")))
    })
}

fn source_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && (b == b'-' || b == b'_')));
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be 1-64 letters, digits, - or _, starting with a letter or digit (it is part of the URL /in/{name})",
        ))
    }
}

/// A key expression, normalized as stored (`header:` names lower-case).
fn key(field: &str, k: &str) -> Result<String, ApiError> {
    KeyExpr::parse(k)
        .map(|e| e.as_text())
        .map_err(|e| ApiError::field(field, e))
}

fn header_name(field: &str, h: &str) -> Result<String, ApiError> {
    let lower = h.to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 128
        || http::HeaderName::from_bytes(lower.as_bytes()).is_err()
    {
        return Err(ApiError::field(field, "must be a header name"));
    }
    Ok(lower)
}

fn tolerance(field: &str, n: i64) -> Result<i32, ApiError> {
    if !(1..=86_400).contains(&n) {
        return Err(ApiError::field(
            field,
            "must be between 1 and 86400 seconds",
        ));
    }
    Ok(n as i32)
}

fn max_body(field: &str, n: i64) -> Result<i32, ApiError> {
    if !(1..=MAX_BODY_BYTES_CAP).contains(&n) {
        return Err(ApiError::field(
            field,
            format!("must be between 1 and {MAX_BODY_BYTES_CAP} (20 MiB, the hard cap)"),
        ));
    }
    Ok(n as i32)
}

fn challenge_param(field: &str, p: &str) -> Result<(), ApiError> {
    if p.is_empty() || p.len() > 128 || p.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must be a query parameter name of 1-128 characters",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–500, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// List inbound sources, in id order (never their secrets).
#[utoipa::path(get, operation_id = "list_sources", path = "/v1/sources", tag = "sources", params(ListQuery),
    responses((status = 200, description = "OK", body = Page<Source>), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Source>>, ApiError> {
    let start = PageStart::parse(KIND, query.limit, query.cursor.as_deref())?;
    let db = s.db().await?;
    let rows = db
        .query(q::SOURCE_LIST, &[&start.after, &start.fetch()])
        .await?;
    let data = rows
        .iter()
        .map(Source::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(start.page(data, |s| s.id, KIND)))
}

/// One source; its secrets are never shown, only `secret_count`.
#[utoipa::path(get, operation_id = "get_source", path = "/v1/sources/{name}", tag = "sources", params(("name" = String, Path)),
    responses((status = 200, description = "OK", body = Source), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Source>, ApiError> {
    let db = s.db().await?;
    let row = db
        .query_opt(q::SOURCE_GET, &[&name])
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(Source::from_row(&row)?))
}

/// `POST /v1/sources`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    name: String,
    /// standard-webhooks, hmac-sha256, github, stripe, token or none.
    verify: String,
    /// Required unless `verify` is `none`.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    signature_header: Option<String>,
    #[serde(default)]
    tolerance_seconds: Option<i64>,
    #[serde(default)]
    ordering_key: Option<String>,
    /// Left out: the scheme's default (standard-webhooks `header:webhook-id`, github
    /// `header:x-github-delivery`, stripe `/id`); `null`: none.
    #[serde(default, deserialize_with = "present")]
    idempotency_key: Patch<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    max_body_bytes: Option<i64>,
    #[serde(default)]
    rate_limit: Option<f64>,
    #[serde(default)]
    get_challenge: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

/// Create an inbound source (README "Receiving webhooks").
#[utoipa::path(post, operation_id = "create_source", path = "/v1/sources", tag = "sources", request_body = CreateSource,
    responses((status = 201, description = "Created", body = Source), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 409, description = "A source of that name exists", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateSource>,
) -> Result<Response, ApiError> {
    source_name("name", &req.name)?;
    let sch = scheme("verify", &req.verify)?;
    let idempotency_key = match req.idempotency_key {
        None => sch.default_idempotency_key().map(str::to_owned),
        Some(k) => k.map(|k| key("idempotency_key", &k)).transpose()?,
    };
    if req.secret.is_some() && !sch.needs_secret() {
        return Err(ApiError::field("secret", "a none source has no secret"));
    }
    let row = Settable {
        verify: req.verify,
        secrets: req.secret.into_iter().collect(),
        signature_header: req
            .signature_header
            .map(|h| header_name("signature_header", &h))
            .transpose()?,
        tolerance_seconds: req
            .tolerance_seconds
            .map(|n| tolerance("tolerance_seconds", n))
            .transpose()?
            .unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        ordering_key: req
            .ordering_key
            .map(|k| key("ordering_key", &k))
            .transpose()?,
        idempotency_key,
        event_type: req.event_type.map(|k| key("event_type", &k)).transpose()?,
        tenant_id: req.tenant_id,
        max_body_bytes: req
            .max_body_bytes
            .map(|n| max_body("max_body_bytes", n))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_BODY_BYTES),
        rate_limit: req.rate_limit,
        get_challenge: req.get_challenge,
        enabled: req.enabled.unwrap_or(true),
        description: req.description.unwrap_or_default(),
    };
    check_fields(&row)?;
    row.check("secret")?;
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    let created = match row.write(&tx, q::SOURCE_INSERT, &req.name).await {
        Ok(r) => r.ok_or(ApiError::Internal)?,
        Err(e) if sql_state(&e) == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(ApiError::Conflict(format!(
                "a source named {:?} exists already",
                req.name
            )));
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    let source = Source::from_row(&created)?;
    tracing::info!(source = %source.name, "admin API: source created");
    let mut response = (StatusCode::CREATED, Json(source)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/sources/{}", req.name)) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(response)
}

/// Field checks both create and PATCH need on the merged row.
fn check_fields(row: &Settable) -> Result<(), ApiError> {
    if let Some(t) = &row.tenant_id {
        validate::tenant_id("tenant_id", t)?;
    }
    if let Some(r) = row.rate_limit {
        validate::rate_limit("rate_limit", r)?;
    }
    if let Some(p) = &row.get_challenge {
        challenge_param("get_challenge", p)?;
    }
    validate::text("description", &row.description)
}

/// `PATCH /v1/sources/{name}`: any subset; `null` clears the optional ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSource {
    #[serde(default, deserialize_with = "present")]
    verify: Patch<String>,
    /// The active secrets, newest first (a rotation: `[new, old]`, later `[new]`).
    #[serde(default, deserialize_with = "present")]
    secrets: Patch<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    signature_header: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    tolerance_seconds: Patch<i64>,
    #[serde(default, deserialize_with = "present")]
    ordering_key: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    idempotency_key: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    event_type: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    tenant_id: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    max_body_bytes: Patch<i64>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Patch<f64>,
    #[serde(default, deserialize_with = "present")]
    get_challenge: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    enabled: Patch<bool>,
    #[serde(default, deserialize_with = "present")]
    description: Patch<String>,
    /// Refused: the name is the source's identity (and its URL).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    name: Patch<serde_json::Value>,
    /// Refused with a pointer to `secrets`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    secret: Patch<serde_json::Value>,
}

/// `Some(v)` of an optional column: `None` left out, `Some(None)` cleared.
fn optional<T>(
    v: Patch<String>,
    f: impl FnOnce(String) -> Result<T, ApiError>,
) -> Result<Option<Option<T>>, ApiError> {
    v.map(|inner| inner.map(f).transpose()).transpose()
}

impl PatchSource {
    fn apply(self, mut row: Settable) -> Result<Settable, ApiError> {
        if self.name.is_some() {
            return Err(ApiError::field(
                "name",
                "a source keeps its name (it is in its URL): create another one",
            ));
        }
        if self.secret.is_some() {
            return Err(ApiError::field(
                "secret",
                "send \"secrets\": the whole list, newest first",
            ));
        }
        if let Some(v) = not_null("verify", self.verify)? {
            scheme("verify", &v)?;
            row.verify = v;
        }
        if let Some(s) = not_null("secrets", self.secrets)? {
            row.secrets = s;
        }
        if let Some(h) = optional(self.signature_header, |h| {
            header_name("signature_header", &h)
        })? {
            row.signature_header = h;
        }
        if let Some(n) = not_null("tolerance_seconds", self.tolerance_seconds)? {
            row.tolerance_seconds = tolerance("tolerance_seconds", n)?;
        }
        if let Some(k) = optional(self.ordering_key, |k| key("ordering_key", &k))? {
            row.ordering_key = k;
        }
        if let Some(k) = optional(self.idempotency_key, |k| key("idempotency_key", &k))? {
            row.idempotency_key = k;
        }
        if let Some(k) = optional(self.event_type, |k| key("event_type", &k))? {
            row.event_type = k;
        }
        if let Some(t) = self.tenant_id {
            row.tenant_id = t;
        }
        if let Some(n) = not_null("max_body_bytes", self.max_body_bytes)? {
            row.max_body_bytes = max_body("max_body_bytes", n)?;
        }
        if let Some(r) = self.rate_limit {
            row.rate_limit = r;
        }
        if let Some(c) = self.get_challenge {
            row.get_challenge = c;
        }
        if let Some(e) = not_null("enabled", self.enabled)? {
            row.enabled = e;
        }
        if let Some(d) = not_null("description", self.description)? {
            row.description = d;
        }
        check_fields(&row)?;
        row.check("secrets")?;
        Ok(row)
    }
}

/// Change any subset of a source's settings; a PATCH that changes nothing writes nothing.
#[utoipa::path(patch, operation_id = "update_source", path = "/v1/sources/{name}", tag = "sources", params(("name" = String, Path)),
    request_body = PatchSource,
    responses((status = 200, description = "OK", body = Source), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<PatchSource>,
) -> Result<Json<Source>, ApiError> {
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    let current = tx
        .query_opt(q::SOURCE_LOCK, &[&name])
        .await?
        .ok_or_else(|| not_found(&name))?;
    let old = Settable::from_row(&current)?;
    let new = req.apply(old.clone())?;
    if new == old {
        // Nothing changes: nothing is written (no updated_at, no wake-up of the listeners).
        return Ok(Json(Source::from_row(&current)?));
    }
    let row = new
        .write(&tx, q::SOURCE_UPDATE, &name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    tx.commit().await?;
    tracing::info!(source = %name, "admin API: source changed");
    Ok(Json(Source::from_row(&row)?))
}

/// Delete a source; its stored requests stay (for the audit and until retention).
#[utoipa::path(delete, operation_id = "delete_source", path = "/v1/sources/{name}", tag = "sources", params(("name" = String, Path)),
    responses((status = 204, description = "Done, no content"), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let db = s.db().await?;
    db.query_opt(q::SOURCE_DELETE, &[&name])
        .await?
        .ok_or_else(|| not_found(&name))?;
    tracing::info!(source = %name, "admin API: source deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/sources/{name}/replay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// RFC 3339; requests received at or after it.
    since: String,
    /// RFC 3339; requests received before it (left out: up to now).
    #[serde(default)]
    until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// How many stored requests were relayed again (one new event each, in arrival order).
    pub replayed: i64,
}

fn instant(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::field(field, format!("must be an RFC 3339 time ({e})")))
}

/// Relay the source's stored requests received in [since, until) again, in arrival order.
#[utoipa::path(post, operation_id = "replay_source", path = "/v1/sources/{name}/replay", tag = "sources", params(("name" = String, Path)),
    request_body = Replay,
    responses((status = 200, description = "OK", body = Replayed), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn replay(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<Replay>,
) -> Result<Json<Replayed>, ApiError> {
    let since = instant("since", &req.since)?;
    let until = req
        .until
        .as_deref()
        .map(|u| instant("until", u))
        .transpose()?;
    if until.is_some_and(|u| u <= since) {
        return Err(ApiError::field("until", "must be after since"));
    }
    let db = s.db().await?;
    let replayed: i64 = match db
        .query_one(q::SOURCE_REPLAY, &[&name, &since, &until])
        .await
    {
        Ok(row) => col(&row, "replayed")?,
        Err(e) if sql_state(&e) == Some(&tokio_postgres::error::SqlState::NO_DATA_FOUND) => {
            return Err(not_found(&name));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(source = %name, replayed, "admin API: source replayed");
    Ok(Json(Replayed { replayed }))
}
