//! `POST /v1/portal-links`: a signed, expiring link to one tenant's portal
//! ([`crate::portal`]), for the application's backend to put in an iframe. And, at start-up,
//! the link key stored for `outbox.portal_link()` (migrations/V15).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use crate::portal::{DEFAULT_LINK_TTL_SECS, Grant, MAX_LINK_TTL_SECS, link_url};
use crate::replica::Replica;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalLink {
    /// The tenant whose portal it opens (`tenant_id` of its events and endpoints).
    tenant_id: String,
    /// How long the link may be opened, e.g. `15m` (the default) or `1h`; at most `24h`.
    /// The session it starts lasts `OUTBOXD_CONSOLE_SESSION_TTL` (12 h by default).
    #[serde(default)]
    ttl: Option<String>,
    /// Pages without actions.
    #[serde(default)]
    read_only: Option<bool>,
    /// The event types (or patterns) the tenant may subscribe its endpoints to; default:
    /// the types seen for it, or any pattern it types.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    /// A product name shown in the portal's header instead of "outboxd".
    #[serde(default)]
    brand: Option<String>,
    /// An accent colour, `#rgb` or `#rrggbb`.
    #[serde(default)]
    accent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalLink {
    /// Absolute: open it (or put it in an iframe) within `expires_at`.
    url: String,
    expires_at: DateTime<Utc>,
    tenant_id: String,
    read_only: bool,
}

/// The base URL of links: `OUTBOXD_PORTAL_URL`, else the one this request came to.
fn base_url(s: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &s.replica.config.portal_url {
        return u.clone();
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| s.replica.config.listen.to_string());
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// Make a portal link: a signed, expiring grant for one tenant's portal (its endpoints and
/// event log, nothing else). Rotating `OUTBOXD_PORTAL_KEY` revokes every link and session.
#[utoipa::path(post, operation_id = "create_portal_link", path = "/v1/portal-links", tag = "portal",
    request_body = CreatePortalLink,
    responses((status = 201, description = "Created", body = PortalLink),
              (status = 400, description = "Invalid input; the error names the field", body = ErrorBody),
              (status = 409, description = "No portal key (no OUTBOXD_PORTAL_KEY nor admin token)", body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreatePortalLink>,
) -> Result<(axum::http::StatusCode, Json<PortalLink>), ApiError> {
    let Some(keys) = crate::console::portal_keys(&s.replica.config) else {
        return Err(ApiError::Conflict(
            "no portal key: set OUTBOXD_PORTAL_KEY (or OUTBOXD_ADMIN_TOKEN)".into(),
        ));
    };
    let ttl = match &req.ttl {
        None => DEFAULT_LINK_TTL_SECS,
        Some(t) => {
            let d = humantime::parse_duration(t)
                .map_err(|e| ApiError::field("ttl", format!("a duration like 15m ({e})")))?;
            let secs = d.as_secs() as i64;
            if !(1..=MAX_LINK_TTL_SECS).contains(&secs) {
                return Err(ApiError::field("ttl", "must be between 1s and 24h"));
            }
            secs
        }
    };
    let now = Utc::now().timestamp();
    let grant = Grant {
        tenant: req.tenant_id,
        exp: now + ttl,
        read_only: req.read_only.unwrap_or(false),
        types: req.event_types,
        brand: req.brand,
        accent: req.accent,
    };
    grant
        .validate()
        .map_err(|e| ApiError::field(e.field, e.message))?;
    let url = link_url(&keys, &base_url(&s, &headers), &grant);
    tracing::info!(read_only = grant.read_only, "admin API: portal link made");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(PortalLink {
            url,
            expires_at: Utc
                .timestamp_opt(grant.exp, 0)
                .single()
                .unwrap_or_else(Utc::now),
            tenant_id: grant.tenant,
            read_only: grant.read_only,
        }),
    ))
}

/// Stores the link key (and the base URL of links: `OUTBOXD_PORTAL_URL`, else `listening`)
/// for `outbox.portal_link()`, retrying until it works (the schema may not be migrated yet)
/// or the listener stops.
pub(crate) async fn store_link_key(
    replica: Arc<Replica>,
    listening: String,
    shutdown: CancellationToken,
) {
    let config = &replica.config;
    let Some(keys) = crate::console::portal_keys(config) else {
        return;
    };
    let base = config.portal_url.clone().unwrap_or(listening);
    let key: &[u8] = keys.link_key();
    let mut wait = Duration::from_millis(200);
    loop {
        let stored = async {
            let db = replica.db().await?;
            db.execute(crate::sql::admin::PORTAL_SET_KEY, &[&key, &base])
                .await?;
            Ok::<_, crate::db::DbError>(())
        }
        .await;
        match stored {
            Ok(()) => {
                tracing::debug!("portal: link key stored for outbox.portal_link()");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "portal: link key not stored yet; trying again");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}
