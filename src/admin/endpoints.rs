//! `/v1/endpoints`: list, create, read, change, delete; secrets. (Reviving dead deliveries,
//! replay and test events: `actions`.)

use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::Row;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, Id, JsonBody, OptionalJsonBody, Patch, not_null, present};
use super::policy;
use super::validate::{self, DEFAULT_MAX_IN_FLIGHT};
use super::views::{Endpoint, MASK, Page, PageStart, Subscription, col};
use crate::sql::admin as q;

const KIND: &str = "endpoints";

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("endpoint {id} does not exist"))
}

fn one(row: Option<Row>, id: i64) -> Result<Row, ApiError> {
    row.ok_or_else(|| not_found(id))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–500, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only this tenant's endpoints.
    tenant_id: Option<String>,
}

/// List endpoints, in id order (never their secrets).
#[utoipa::path(get, operation_id = "list_endpoints", path = "/v1/endpoints", tag = "endpoints", params(ListQuery),
    responses((status = 200, description = "OK", body = Page<Endpoint>), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<Endpoint>>, ApiError> {
    let start = PageStart::parse(KIND, query.limit, query.cursor.as_deref())?;
    let db = s.db().await?;
    let rows = db
        .query(
            q::ENDPOINT_LIST,
            &[&start.after, &query.tenant_id, &start.fetch()],
        )
        .await?;
    let data = rows
        .iter()
        .map(Endpoint::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(start.page(data, |e| e.id, KIND)))
}

/// One endpoint; its secrets are never shown here, only `secret_count`.
#[utoipa::path(get, operation_id = "get_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Endpoint), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, Id(id): Id) -> Result<Json<Endpoint>, ApiError> {
    let db = s.db().await?;
    let row = one(db.query_opt(q::ENDPOINT_GET, &[&id]).await?, id)?;
    Ok(Json(Endpoint::from_row(&row)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    url: String,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    all_tenants: Option<bool>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<HashMap<String, String>>)]
    headers: Option<Map<String, Value>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    max_in_flight: Option<i64>,
    #[serde(default)]
    rate_limit: Option<f64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    disabled_reason: Option<String>,
    /// Creates one subscription with these patterns at the same time.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    /// The content filter of that subscription.
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    retry_schedule: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
    /// The client certificate to present (mutual TLS): a name of files in
    /// `OUTBOXD_CLIENT_CERT_DIR`, never the certificate itself.
    #[serde(default)]
    client_certificate: Option<String>,
}

/// The create response: the endpoint, its secret (shown this once) and the subscription.
#[derive(Debug, Serialize, ToSchema)]
struct Created {
    #[serde(flatten)]
    endpoint: Endpoint,
    secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription: Option<Subscription>,
}

/// Create an endpoint (and, with `event_types`, one subscription). The secret is shown once.
#[utoipa::path(post, operation_id = "create_endpoint", path = "/v1/endpoints", tag = "endpoints", request_body = CreateEndpoint,
    responses((status = 201, description = "Created", body = Created), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateEndpoint>,
) -> Result<Response, ApiError> {
    let url = validate::url("url", &req.url, s.replica.sender.policy())?;
    if let Some(t) = &req.tenant_id {
        validate::tenant_id("tenant_id", t)?;
    }
    let all_tenants = req.all_tenants.unwrap_or(false);
    validate::all_tenants(all_tenants, req.tenant_id.as_deref())?;
    if let Some(secret) = &req.secret {
        validate::secret("secret", secret)?;
    }
    let headers = match &req.headers {
        Some(h) => validate::headers("headers", h)?,
        None => Value::Object(Map::new()),
    };
    let enabled = req.enabled.unwrap_or(true);
    let max_in_flight = match req.max_in_flight {
        Some(n) => validate::max_in_flight("max_in_flight", n)?,
        None => DEFAULT_MAX_IN_FLIGHT,
    };
    if let Some(r) = req.rate_limit {
        validate::rate_limit("rate_limit", r)?;
    }
    let description = req.description.unwrap_or_default();
    validate::text("description", &description)?;
    if let Some(reason) = &req.disabled_reason {
        validate::text("disabled_reason", reason)?;
        if enabled {
            return Err(ApiError::field(
                "disabled_reason",
                "only a disabled endpoint has one (send \"enabled\": false too)",
            ));
        }
    }
    if let Some(types) = &req.event_types {
        validate::event_types("event_types", types)?;
    }
    let own = OwnPolicy::validate(Some(req.retry_schedule), Some(req.max_age))?;
    if let Some(name) = &req.client_certificate {
        validate::client_certificate("client_certificate", name)?;
    }

    let mut db = s.db().await?;
    if let Some(f) = &req.filter {
        if req.event_types.is_none() {
            return Err(ApiError::field(
                "filter",
                "belongs to the subscription created with event_types (send event_types too)",
            ));
        }
        policy::filter(&*db, "filter", f).await?;
    }
    let own = own.apply(OwnPolicy::default());
    let tx = db.transaction().await?;
    let row = tx
        .query_one(
            q::ENDPOINT_INSERT,
            &[
                &url,
                &req.tenant_id,
                &all_tenants,
                &req.secret,
                &headers,
                &enabled,
                &max_in_flight,
                &req.rate_limit,
                &description,
                &req.disabled_reason,
                &own.retry_schedule,
                &own.max_age_seconds,
                &req.client_certificate,
            ],
        )
        .await?;
    let endpoint = Endpoint::from_row(&row)?;
    let secret: String = col(&row, "secret")?;
    let subscription = match &req.event_types {
        Some(types) => {
            let row = tx
                .query_one(
                    q::SUBSCRIPTION_INSERT,
                    &[&endpoint.id, types, &true, &req.filter],
                )
                .await?;
            Some(Subscription::from_row(&row)?)
        }
        None => None,
    };
    tx.commit().await?;
    tracing::info!(endpoint_id = endpoint.id, "admin API: endpoint created");
    let location = format!("/v1/endpoints/{}", endpoint.id);
    let mut response = (
        StatusCode::CREATED,
        Json(Created {
            endpoint,
            secret,
            subscription,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, v);
    }
    Ok(no_store(response))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpoint {
    #[serde(default, deserialize_with = "present")]
    url: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    tenant_id: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    all_tenants: Patch<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<HashMap<String, String>>)]
    headers: Patch<Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    enabled: Patch<bool>,
    #[serde(default, deserialize_with = "present")]
    max_in_flight: Patch<i64>,
    #[serde(default, deserialize_with = "present")]
    rate_limit: Patch<f64>,
    #[serde(default, deserialize_with = "present")]
    description: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    disabled_reason: Patch<String>,
    /// Refused with a pointer to the rotation routes.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    secret: Patch<Value>,
    /// Refused with a pointer to `/v1/subscriptions`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    event_types: Patch<Value>,
    #[serde(default, deserialize_with = "present")]
    retry_schedule: Patch<String>,
    #[serde(default, deserialize_with = "present")]
    max_age: Patch<String>,
    /// `null` stops presenting a client certificate.
    #[serde(default, deserialize_with = "present")]
    client_certificate: Patch<String>,
}

/// An endpoint's own retry policy (nullable: null means the global setting).
#[derive(Debug, Clone, Default, PartialEq)]
struct OwnPolicy {
    retry_schedule: Option<String>,
    max_age_seconds: Option<f64>,
}

/// Changes to an [`OwnPolicy`], validated: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Default)]
struct OwnPolicyChanges {
    retry_schedule: Patch<String>,
    max_age_seconds: Patch<f64>,
}

impl OwnPolicy {
    fn from_row(row: &Row) -> Result<OwnPolicy, ApiError> {
        Ok(OwnPolicy {
            retry_schedule: col(row, "retry_schedule")?,
            max_age_seconds: col(row, "max_age_seconds")?,
        })
    }

    /// Validates the request's fields (`None`: absent, `Some(None)`: null).
    fn validate(
        retry_schedule: Patch<String>,
        max_age: Patch<String>,
    ) -> Result<OwnPolicyChanges, ApiError> {
        if let Some(Some(r)) = &retry_schedule {
            policy::retry_schedule("retry_schedule", r)?;
        }
        let max_age_seconds = match max_age {
            Some(Some(m)) => Some(Some(policy::max_age("max_age", &m)?)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(OwnPolicyChanges {
            retry_schedule,
            max_age_seconds,
        })
    }
}

impl OwnPolicyChanges {
    fn apply(self, mut p: OwnPolicy) -> OwnPolicy {
        if let Some(r) = self.retry_schedule {
            p.retry_schedule = r;
        }
        if let Some(m) = self.max_age_seconds {
            p.max_age_seconds = m;
        }
        p
    }
}

/// The settable columns of an endpoint, as written by `endpoint_update.sql`.
#[derive(Debug, Clone, PartialEq)]
struct Settable {
    url: String,
    tenant_id: Option<String>,
    all_tenants: bool,
    headers: Value,
    enabled: bool,
    max_in_flight: i32,
    rate_limit: Option<f64>,
    description: String,
    disabled_reason: Option<String>,
    own: OwnPolicy,
    client_certificate: Option<String>,
}

impl Settable {
    fn from_row(row: &Row) -> Result<Settable, ApiError> {
        Ok(Settable {
            url: col(row, "url")?,
            tenant_id: col(row, "tenant_id")?,
            all_tenants: col(row, "all_tenants")?,
            headers: col(row, "headers")?,
            enabled: col(row, "enabled")?,
            max_in_flight: col(row, "max_in_flight")?,
            rate_limit: col(row, "rate_limit")?,
            description: col(row, "description")?,
            disabled_reason: col(row, "disabled_reason")?,
            own: OwnPolicy::from_row(row)?,
            client_certificate: col(row, "client_certificate")?,
        })
    }
}

/// A PATCH request, validated field by field (before the row is read).
#[derive(Debug, Default)]
struct Changes {
    url: Option<String>,
    tenant_id: Option<Option<String>>,
    all_tenants: Option<bool>,
    headers: Option<Value>,
    enabled: Option<bool>,
    max_in_flight: Option<i32>,
    rate_limit: Option<Option<f64>>,
    description: Option<String>,
    disabled_reason: Option<Option<String>>,
    own: OwnPolicyChanges,
    client_certificate: Patch<String>,
}

impl Changes {
    fn validate(p: PatchEndpoint, s: &AppState) -> Result<Changes, ApiError> {
        if p.secret.is_some() {
            return Err(ApiError::field(
                "secret",
                "secrets are changed with POST /v1/endpoints/{id}/secret/rotate",
            ));
        }
        if p.event_types.is_some() {
            return Err(ApiError::field(
                "event_types",
                "event types belong to subscriptions: use /v1/subscriptions",
            ));
        }
        let url = not_null("url", p.url)?
            .map(|u| validate::url("url", &u, s.replica.sender.policy()))
            .transpose()?;
        if let Some(Some(t)) = &p.tenant_id {
            validate::tenant_id("tenant_id", t)?;
        }
        let headers = not_null("headers", p.headers)?
            .map(|h| validate::headers("headers", &h))
            .transpose()?;
        let max_in_flight = not_null("max_in_flight", p.max_in_flight)?
            .map(|n| validate::max_in_flight("max_in_flight", n))
            .transpose()?;
        if let Some(Some(r)) = p.rate_limit {
            validate::rate_limit("rate_limit", r)?;
        }
        let description = not_null("description", p.description)?;
        if let Some(d) = &description {
            validate::text("description", d)?;
        }
        if let Some(Some(r)) = &p.disabled_reason {
            validate::text("disabled_reason", r)?;
        }
        let own = OwnPolicy::validate(p.retry_schedule, p.max_age)?;
        if let Some(Some(name)) = &p.client_certificate {
            validate::client_certificate("client_certificate", name)?;
        }
        Ok(Changes {
            url,
            tenant_id: p.tenant_id,
            all_tenants: not_null("all_tenants", p.all_tenants)?,
            headers,
            enabled: not_null("enabled", p.enabled)?,
            max_in_flight,
            rate_limit: p.rate_limit,
            description,
            disabled_reason: p.disabled_reason,
            own,
            client_certificate: p.client_certificate,
        })
    }

    /// The row after the change. Re-enabling clears `disabled_reason`. Masked values sent
    /// back (a URL or header values as GET shows them) keep what is stored.
    fn apply(self, mut row: Settable) -> Result<Settable, ApiError> {
        let tenancy_changed = self.tenant_id.is_some() || self.all_tenants.is_some();
        if let Some(u) = self.url {
            row.url =
                crate::mask::unmask_url(&u, &row.url).map_err(|why| ApiError::field("url", why))?;
        }
        if let Some(t) = self.tenant_id {
            row.tenant_id = t;
        }
        if let Some(a) = self.all_tenants {
            row.all_tenants = a;
        }
        if tenancy_changed {
            validate::all_tenants(row.all_tenants, row.tenant_id.as_deref())?;
        }
        if let Some(h) = self.headers {
            row.headers = unmask_headers(h, &row.headers)?;
        }
        if let Some(n) = self.max_in_flight {
            row.max_in_flight = n;
        }
        if let Some(r) = self.rate_limit {
            row.rate_limit = r;
        }
        if let Some(d) = self.description {
            row.description = d;
        }
        if let Some(e) = self.enabled {
            row.enabled = e;
            if e {
                row.disabled_reason = None;
            }
        }
        if let Some(reason) = self.disabled_reason {
            if reason.is_some() && row.enabled {
                return Err(ApiError::field(
                    "disabled_reason",
                    "only a disabled endpoint has one (send \"enabled\": false too)",
                ));
            }
            row.disabled_reason = reason;
        }
        row.own = self.own.apply(row.own);
        if let Some(c) = self.client_certificate {
            row.client_certificate = c;
        }
        Ok(row)
    }
}

/// New extra headers, where a value of [`MASK`] keeps the stored value of that header.
fn unmask_headers(new: Value, stored: &Value) -> Result<Value, ApiError> {
    let Value::Object(new) = new else {
        return Ok(new);
    };
    new.into_iter()
        .map(|(name, value)| {
            if value != MASK {
                return Ok((name, value));
            }
            match stored.get(&name) {
                Some(v) => Ok((name, v.clone())),
                None => Err(ApiError::field(
                    "headers",
                    format!(
                        "{name:?} is {MASK:?} (a masked value) but the endpoint has no such header: send its value"
                    ),
                )),
            }
        })
        .collect::<Result<Map<String, Value>, ApiError>>()
        .map(Value::Object)
}

/// Change any subset of an endpoint's fields (`null` clears the nullable ones).
#[utoipa::path(patch, operation_id = "update_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = i64, Path)),
    request_body = PatchEndpoint,
    responses((status = 200, description = "OK", body = Endpoint), (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Id(id): Id,
    JsonBody(req): JsonBody<PatchEndpoint>,
) -> Result<Json<Endpoint>, ApiError> {
    let changes = Changes::validate(req, &s)?;
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    let current = one(tx.query_opt(q::ENDPOINT_LOCK, &[&id]).await?, id)?;
    let before = Settable::from_row(&current)?;
    let new = changes.apply(before.clone())?;
    if new == before {
        // Nothing changes: no write, no new updated_at, no catalog reload on every replica.
        tx.commit().await?;
        return Ok(Json(Endpoint::from_row(&current)?));
    }
    let row = tx
        .query_one(
            q::ENDPOINT_UPDATE,
            &[
                &id,
                &new.url,
                &new.tenant_id,
                &new.all_tenants,
                &new.headers,
                &new.enabled,
                &new.max_in_flight,
                &new.rate_limit,
                &new.description,
                &new.disabled_reason,
                &new.own.retry_schedule,
                &new.own.max_age_seconds,
                &new.client_certificate,
            ],
        )
        .await?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "admin API: endpoint changed");
    Ok(Json(Endpoint::from_row(&row)?))
}

/// Delete an endpoint with its subscriptions, deliveries and lanes (its attempts stay).
#[utoipa::path(delete, operation_id = "delete_endpoint", path = "/v1/endpoints/{id}", tag = "endpoints", params(("id" = i64, Path)),
    responses((status = 204, description = "Done, no content"), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    tx.execute(q::ROUTING_LOCK, &[&crate::locks::ROUTER])
        .await?;
    one(tx.query_opt(q::ENDPOINT_DELETE, &[&id]).await?, id)?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "admin API: endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
struct Secrets {
    endpoint_id: i64,
    /// Newest first; the first one is the current secret, all of them sign.
    secrets: Vec<String>,
}

/// `GET /v1/endpoints/{id}/secret`: the explicit read of the active secrets.
#[utoipa::path(get, operation_id = "get_endpoint_secrets", path = "/v1/endpoints/{id}/secret", tag = "endpoints",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Secrets), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn secrets(State(s): State<AppState>, Id(id): Id) -> Result<Response, ApiError> {
    let db = s.db().await?;
    let row = one(db.query_opt(q::ENDPOINT_SECRETS, &[&id]).await?, id)?;
    let secrets: Vec<String> = col(&row, "secrets")?;
    tracing::info!(endpoint_id = id, "admin API: endpoint secrets read");
    Ok(no_store(Json(Secrets {
        endpoint_id: id,
        secrets,
    })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Rotated {
    endpoint_id: i64,
    /// The new secret; it signs alongside the older ones until the rotation is finished.
    secret: String,
    secret_count: usize,
}

/// At most this many secrets are kept (`outbox.rotate_secret` drops the oldest beyond).
const MAX_SECRETS: usize = 10;

/// Start a rotation: the new secret (generated when not given) signs alongside the old ones.
#[utoipa::path(post, operation_id = "rotate_endpoint_secret", path = "/v1/endpoints/{id}/secret/rotate", tag = "endpoints",
    params(("id" = i64, Path)), request_body(content = Option<Rotate>),
    responses((status = 200, description = "OK", body = Rotated), (status = 404, description = "No such resource", body = ErrorBody),
              (status = 409, description = "Conflicts with its current state", body = ErrorBody)))]
pub async fn rotate(
    State(s): State<AppState>,
    Id(id): Id,
    OptionalJsonBody(req): OptionalJsonBody<Rotate>,
) -> Result<Response, ApiError> {
    if let Some(secret) = &req.secret {
        validate::secret("secret", secret)?;
    }
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    let current = one(tx.query_opt(q::ENDPOINT_LOCK, &[&id]).await?, id)?;
    let secrets: Vec<String> = col(&current, "secrets")?;
    if let Some(new) = &req.secret
        && secrets.iter().any(|s| s == new)
    {
        return Err(ApiError::Conflict(
            "this secret is already active on the endpoint".into(),
        ));
    }
    let row = tx
        .query_one(q::ENDPOINT_ROTATE_SECRET, &[&id, &req.secret])
        .await?;
    let secret: String = col(&row, "secret")?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "admin API: secret rotation started");
    Ok(no_store(Json(Rotated {
        endpoint_id: id,
        secret,
        secret_count: (secrets.len() + 1).min(MAX_SECRETS),
    })))
}

/// End a rotation: keep only the newest secret.
#[utoipa::path(post, operation_id = "finish_endpoint_secret_rotation", path = "/v1/endpoints/{id}/secret/finish-rotation", tag = "endpoints",
    params(("id" = i64, Path)),
    responses((status = 200, description = "OK", body = Endpoint), (status = 404, description = "No such resource", body = ErrorBody)))]
pub async fn finish_rotation(
    State(s): State<AppState>,
    Id(id): Id,
) -> Result<Json<Endpoint>, ApiError> {
    let mut db = s.db().await?;
    let tx = db.transaction().await?;
    one(tx.query_opt(q::ENDPOINT_LOCK, &[&id]).await?, id)?;
    tx.execute(q::ENDPOINT_FINISH_ROTATION, &[&id]).await?;
    let row = one(tx.query_opt(q::ENDPOINT_GET, &[&id]).await?, id)?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "admin API: secret rotation finished");
    Ok(Json(Endpoint::from_row(&row)?))
}

/// Responses carrying secrets must not be cached by anything in between.
fn no_store(body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::masked_url;

    fn row() -> Settable {
        Settable {
            url: "https://example.com/".into(),
            tenant_id: None,
            all_tenants: false,
            headers: serde_json::json!({}),
            enabled: false,
            max_in_flight: 16,
            rate_limit: Some(5.0),
            description: "d".into(),
            disabled_reason: Some("410 Gone at …".into()),
            own: OwnPolicy {
                retry_schedule: Some("1m".into()),
                max_age_seconds: Some(3600.0),
            },
            client_certificate: None,
        }
    }

    #[test]
    fn an_endpoints_own_policy_is_kept_changed_or_cleared_field_by_field() {
        let new = Changes {
            own: OwnPolicyChanges {
                retry_schedule: Some(None),
                max_age_seconds: Some(Some(60.0)),
            },
            ..Changes::default()
        }
        .apply(row())
        .unwrap();
        assert_eq!(
            new.own,
            OwnPolicy {
                retry_schedule: None,
                max_age_seconds: Some(60.0),
            }
        );
    }

    #[test]
    fn empty_patch_changes_nothing() {
        assert_eq!(Changes::default().apply(row()).unwrap(), row());
    }

    #[test]
    fn masked_values_sent_back_keep_what_is_stored() {
        let stored = Settable {
            url: "https://u:p@example.com/".into(),
            headers: serde_json::json!({"authorization": "Bearer s3cret", "x-a": "1"}),
            ..row()
        };
        let new = Changes {
            url: Some(masked_url(&stored.url)),
            headers: Some(serde_json::json!({"authorization": MASK, "x-a": "2"})),
            ..Changes::default()
        }
        .apply(stored.clone())
        .unwrap();
        assert_eq!(new.url, stored.url);
        assert_eq!(
            new.headers,
            serde_json::json!({"authorization": "Bearer s3cret", "x-a": "2"})
        );
        let err = Changes {
            headers: Some(serde_json::json!({"x-new": MASK})),
            ..Changes::default()
        }
        .apply(stored)
        .unwrap_err();
        assert!(err.to_string().starts_with("headers: "), "{err}");
    }

    #[test]
    fn re_enabling_clears_the_reason() {
        let new = Changes {
            enabled: Some(true),
            ..Changes::default()
        }
        .apply(row())
        .unwrap();
        assert!(new.enabled && new.disabled_reason.is_none());
        let err = Changes {
            enabled: Some(true),
            disabled_reason: Some(Some("x".into())),
            ..Changes::default()
        }
        .apply(row())
        .unwrap_err();
        assert!(err.to_string().starts_with("disabled_reason: "), "{err}");
    }

    #[test]
    fn nullable_fields_can_be_cleared() {
        let new = Changes {
            rate_limit: Some(None),
            tenant_id: Some(None),
            ..Changes::default()
        }
        .apply(Settable {
            tenant_id: Some("acme".into()),
            ..row()
        })
        .unwrap();
        assert_eq!(new.rate_limit, None);
        assert_eq!(new.tenant_id, None);
    }

    #[test]
    fn all_tenants_only_for_internal_endpoints() {
        let err = Changes {
            tenant_id: Some(Some("acme".into())),
            ..Changes::default()
        }
        .apply(Settable {
            all_tenants: true,
            ..row()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("all_tenants: "), "{err}");
    }
}
