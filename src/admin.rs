//! The HTTP listener: `/healthz` (process alive), `/readyz` (start-up done, the loops
//! succeeding: `crate::readiness`; database reachable, schema at this binary's version),
//! `/metrics` (Prometheus text format), the REST admin API under `/v1` (SPEC §2, README
//! "Admin API"; its OpenAPI document at `/v1/openapi.json`) and the console under `/ui/`
//! ([`crate::console`]).
//!
//! `/v1` is guarded by `auth` (bearer token, or loopback-only without one), takes JSON
//! bodies of at most `extract::MAX_BODY_BYTES` (64 KiB) with unknown fields refused, and answers
//! errors as `{"error": {"code", "message", "field"?}}` ([`ApiError`]). Every query it
//! runs is a named file in `sql/admin/` ([`crate::sql::admin`]). Changes reach every replica through the
//! configuration triggers (`outbox.config_version`, `NOTIFY outboxd_config`).
//!
//! Admin and console requests share the engine's connection pool but use at most a quarter
//! of it at once, so a burst of them cannot starve routing and delivery.

mod actions;
mod auth;
mod deliveries;
mod endpoints;
mod error;
mod event_types;
mod events;
mod extract;
mod metrics;
mod openapi;
mod policy;
mod portal;
mod sources;
mod subscriptions;
mod validate;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::eventlog::Conn;
use crate::replica::Replica;
pub use error::ApiError;

#[derive(Clone)]
struct AppState {
    replica: Arc<Replica>,
    prom: PrometheusHandle,
    /// Database connections the admin API may hold at once.
    db_permits: Arc<Semaphore>,
}

impl AppState {
    /// A pooled connection for one admin request (and its share of the pool).
    async fn db(&self) -> Result<Conn, ApiError> {
        Ok(Conn::acquire(
            &self.replica.pool,
            self.replica.config.pooler,
            &self.db_permits,
        )
        .await?)
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    replica: Arc<Replica>,
    prom: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let permits = (replica.config.db_pool_size / 4).max(1);
    if replica.config.portal_key.is_none() && replica.config.admin_token.is_some() {
        tracing::warn!(
            "OUTBOXD_PORTAL_KEY is not set: tenant portal links are signed with a key derived \
             from OUTBOXD_ADMIN_TOKEN (changing the token revokes them all); set a key of its own"
        );
    }
    let bound = listener
        .local_addr()
        .map_or_else(|_| replica.config.listen.to_string(), |a| a.to_string());
    tokio::spawn(portal::store_link_key(
        replica.clone(),
        format!("http://{bound}"),
        shutdown.clone(),
    ));
    let state = AppState {
        replica,
        prom,
        db_permits: Arc::new(Semaphore::new(permits)),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .nest("/v1", v1(state.clone()))
        .with_state(state.clone())
        .merge(crate::console::router(state.replica, state.db_permits));
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

/// The admin API (mounted at `/v1`).
fn v1(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/endpoints", get(endpoints::list).post(endpoints::create))
        .route(
            "/endpoints/{id}",
            get(endpoints::get)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route("/endpoints/{id}/secret", get(endpoints::secrets))
        .route("/endpoints/{id}/secret/rotate", post(endpoints::rotate))
        .route(
            "/endpoints/{id}/secret/finish-rotation",
            post(endpoints::finish_rotation),
        )
        .route("/endpoints/{id}/retry-dead", post(actions::retry_dead))
        .route("/endpoints/{id}/replay", post(actions::replay))
        .route("/endpoints/{id}/test", post(actions::test_event))
        .route("/endpoints/{id}/health", get(actions::health))
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::get)
                .patch(subscriptions::patch)
                .delete(subscriptions::delete),
        )
        .route("/sources", get(sources::list).post(sources::create))
        .route(
            "/sources/{name}",
            get(sources::get)
                .patch(sources::patch)
                .delete(sources::delete),
        )
        .route("/sources/{name}/replay", post(sources::replay))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(actions::delivery))
        .route("/deliveries/{id}/retry", post(actions::retry))
        .route("/deliveries/{id}/resend", post(actions::resend))
        .route("/events", get(events::search))
        .route("/events/{event_id}", get(deliveries::event))
        .route("/events/{event_id}/payload", get(events::payload))
        .route("/event-types", get(event_types::list))
        .route(
            "/event-types/{name}",
            get(event_types::get)
                .put(event_types::register)
                .delete(event_types::unregister),
        )
        .route("/portal-links", post(portal::create))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("no such route under /v1".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state, auth::require_token))
}

/// The OpenAPI document of `/v1`.
pub(crate) fn openapi_document() -> String {
    openapi::document_text().to_owned()
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    match readiness(&s).await {
        Ok(schema) => match schema.warning() {
            None => (StatusCode::OK, "ready\n".into()),
            Some(warning) => (StatusCode::OK, format!("ready; {warning}\n")),
        },
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// What `/readyz` checks (also `outboxd_ready` in `/metrics`): why not, when not ready; the
/// schema it found, when ready (a newer one it supports is ready: a rolling upgrade).
async fn readiness(s: &AppState) -> Result<crate::db::Schema, String> {
    s.replica.readiness.verdict(std::time::Instant::now())?;
    let check = async {
        let client = s.replica.db().await?;
        crate::db::check_schema(client.client()).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Ok(schema)) => Ok(schema),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("database did not answer within 5s".into()),
    }
}
