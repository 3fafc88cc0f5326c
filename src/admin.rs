//! The HTTP listener: `/healthz` (process alive), `/readyz` (database reachable, schema at
//! this binary's version) and `/metrics` (Prometheus text format).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    prom: PrometheusHandle,
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    prom: PrometheusHandle,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AppState { shared, prom });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "HTTP listener failed");
    }
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let check = async {
        let client = s.shared.pool.get().await?;
        crate::db::check_schema(&client).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), check).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database did not answer within 5s\n".into(),
        ),
    }
}

async fn metrics(State(s): State<AppState>) -> String {
    s.prom.render()
}
