//! Prometheus metrics (SPEC §6), all prefixed `outboxd_`. Labels stay bounded: `endpoint_id`
//! at most, never a resource key or event id.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `outboxd_events_routed_total` | counter | |
//! | `outboxd_deliveries_created_total` | counter | |
//! | `outboxd_deliveries_total` | counter | `endpoint_id`, `outcome` = succeeded / retry / dead |
//! | `outboxd_attempts_total` | counter | `endpoint_id`, `result` = success / error kind |
//! | `outboxd_attempt_duration_seconds` | histogram | `outcome` = success / failure |
//! | `outboxd_outbox_lag_seconds` | gauge | age of the oldest unrouted event |
//! | `outboxd_deliveries_pending` / `_delivering` / `_dead` | gauge | |
//! | `outboxd_oldest_pending_delivery_age_seconds` | gauge | |
//! | `outboxd_endpoint_circuit_state` | gauge | `endpoint_id`; 0 closed, 1 open, 2 half-open |
//! | `outboxd_in_flight_deliveries` | gauge | this replica's HTTP requests in flight |
//! | `outboxd_db_pool_connections` | gauge | `state` = in_use / idle / max |
//! | `outboxd_leases_rescued_total` | counter | |
//! | `outboxd_db_errors_total` | counter | `task` |
//! | `outboxd_build_info` | gauge (1) | `version` |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (several engines in one
/// test process share it).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("outboxd_attempt_duration_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); then
            // our handle renders an empty page rather than failing the engine.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "outboxd_events_routed_total",
        "Events routed (fanned out to endpoints)."
    );
    describe_counter!(
        "outboxd_deliveries_created_total",
        "Deliveries created by routing."
    );
    describe_counter!(
        "outboxd_deliveries_total",
        "Attempt results by the state they led to."
    );
    describe_counter!("outboxd_attempts_total", "HTTP attempts by result.");
    describe_histogram!(
        "outboxd_attempt_duration_seconds",
        "Duration of one HTTP attempt."
    );
    describe_gauge!(
        "outboxd_outbox_lag_seconds",
        "Age of the oldest unrouted event."
    );
    describe_gauge!(
        "outboxd_deliveries_pending",
        "Deliveries waiting (including held)."
    );
    describe_gauge!(
        "outboxd_deliveries_delivering",
        "Deliveries leased by a replica."
    );
    describe_gauge!(
        "outboxd_deliveries_dead",
        "Dead deliveries (until retried or cleaned)."
    );
    describe_gauge!(
        "outboxd_oldest_pending_delivery_age_seconds",
        "Age of the oldest unfinished delivery."
    );
    describe_gauge!(
        "outboxd_endpoint_circuit_state",
        "0 closed, 1 open, 2 half-open."
    );
    describe_gauge!(
        "outboxd_in_flight_deliveries",
        "HTTP requests in flight in this replica."
    );
    describe_gauge!("outboxd_db_pool_connections", "Database pool connections.");
    describe_counter!(
        "outboxd_leases_rescued_total",
        "Expired leases returned to pending."
    );
    describe_counter!(
        "outboxd_db_errors_total",
        "Database errors by task (retried)."
    );
    describe_gauge!("outboxd_build_info", "Always 1; labels carry the version.");
    metrics::gauge!("outboxd_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
