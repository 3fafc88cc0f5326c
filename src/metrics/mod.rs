//! Prometheus metrics (SPEC §6), all prefixed `outboxd_` (plus the standard `process_*`).
//! Labels stay bounded: `endpoint_id` at most (limited by `OUTBOXD_METRICS_ENDPOINT_LABELS`),
//! never a resource key or event id. The README's "Monitoring" section has the same table.
//!
//! Three sources, one page (`/metrics`, assembled by the admin API):
//! * **process-wide counters** through the `metrics` facade and its Prometheus recorder
//!   ([`handle`]), every known label set registered at 0 at start, so `increase()` sees the
//!   first event too; the `process_*` gauges ([`collect_process`] before each render);
//! * **per-replica state read at scrape time**: in-flight work, pool, circuit breakers and the
//!   per-endpoint series ([`endpoints`]), so nothing shown can be older than the scrape and
//!   endpoints that are gone are gone;
//! * **database-wide gauges** ([`database`]) from the one replica holding the stats lease, and
//!   only while fresh.
//!
//! | metric | type | labels | exported by |
//! |---|---|---|---|
//! | `outboxd_build_info` | gauge (1) | `version` | every replica |
//! | `outboxd_ready` | gauge | | every replica: 1 when `/readyz` would answer 200 |
//! | `outboxd_schema_version` | gauge | `of` = binary / database | every replica: the newest migration it knows; the database's while ready |
//! | `outboxd_events_routed_total` | counter | | every replica (grows on the router) |
//! | `outboxd_deliveries_created_total` | counter | | every replica (grows on the router) |
//! | `outboxd_deliveries_filtered_total` | counter | | every replica (grows on the router) |
//! | `outboxd_filter_errors_total` | counter | | every replica (grows on the router) |
//! | `outboxd_attempts_total` | counter | `endpoint_id`, `result` = success / failure | every replica |
//! | `outboxd_attempt_errors_total` | counter | `kind` = the error kinds of `outbox.attempts` | every replica |
//! | `outboxd_deliveries_completed_total` | counter | `endpoint_id`, `state` = succeeded / dead | every replica |
//! | `outboxd_attempt_duration_seconds` | histogram | `endpoint_id` | every replica |
//! | `outboxd_delivery_latency_seconds` | histogram | `endpoint_id` | every replica: event created → its 2xx |
//! | `outboxd_endpoint_circuit_state` | gauge | `endpoint_id`; 0 closed, 1 open, 2 half-open | every replica (its own breakers) |
//! | `outboxd_endpoint_circuits` | gauge | `state` = closed / open / half_open | every replica: enabled endpoints per state |
//! | `outboxd_in_flight_deliveries` | gauge | | every replica: claimed, not yet recorded |
//! | `outboxd_db_pool_connections` | gauge | `state` = in_use / idle | every replica |
//! | `outboxd_db_pool_max_connections` | gauge | | every replica |
//! | `outboxd_db_pool_waiting_tasks` | gauge | | every replica |
//! | `outboxd_leases_rescued_total` | counter | | every replica |
//! | `outboxd_outcomes_after_lease_total` | counter | | every replica |
//! | `outboxd_lane_handoffs_total` | counter | | every replica: lane successors leased by the recording transaction |
//! | `outboxd_db_errors_total` | counter | `task` | every replica |
//! | `outboxd_retention_deleted_total` | counter | `table` | every replica |
//! | `outboxd_stats_leader` | gauge | | every replica: 1 on the stats exporter |
//! | `outboxd_stats_last_success_timestamp_seconds` | gauge | | replicas that refreshed the stats |
//! | `outboxd_outbox_lag_seconds` | gauge | | stats leader: age of the oldest unrouted event |
//! | `outboxd_deliveries_pending` / `_delivering` / `_dead` | gauge | | stats leader |
//! | `outboxd_oldest_pending_delivery_age_seconds` | gauge | | stats leader |
//! | `outboxd_endpoint_deliveries_pending` / `_dead` | gauge | `endpoint_id` | stats leader |
//! | `process_*` | | | every replica (`metrics-process`) |

pub mod database;
pub mod endpoints;
pub mod exposition;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Every metric name outboxd exports (the `process_*` family aside), in one place.
pub mod names {
    pub const BUILD_INFO: &str = "outboxd_build_info";
    pub const READY: &str = "outboxd_ready";
    pub const SCHEMA_VERSION: &str = "outboxd_schema_version";
    pub const EVENTS_ROUTED: &str = "outboxd_events_routed_total";
    pub const DELIVERIES_CREATED: &str = "outboxd_deliveries_created_total";
    pub const DELIVERIES_FILTERED: &str = "outboxd_deliveries_filtered_total";
    pub const FILTER_ERRORS: &str = "outboxd_filter_errors_total";
    pub const ATTEMPTS: &str = "outboxd_attempts_total";
    pub const ATTEMPT_ERRORS: &str = "outboxd_attempt_errors_total";
    pub const DELIVERIES_COMPLETED: &str = "outboxd_deliveries_completed_total";
    pub const ATTEMPT_DURATION: &str = "outboxd_attempt_duration_seconds";
    pub const DELIVERY_LATENCY: &str = "outboxd_delivery_latency_seconds";
    pub const ENDPOINT_CIRCUIT_STATE: &str = "outboxd_endpoint_circuit_state";
    pub const ENDPOINT_CIRCUITS: &str = "outboxd_endpoint_circuits";
    pub const IN_FLIGHT: &str = "outboxd_in_flight_deliveries";
    pub const POOL_CONNECTIONS: &str = "outboxd_db_pool_connections";
    pub const POOL_MAX: &str = "outboxd_db_pool_max_connections";
    pub const POOL_WAITING: &str = "outboxd_db_pool_waiting_tasks";
    pub const LEASES_RESCUED: &str = "outboxd_leases_rescued_total";
    pub const OUTCOMES_AFTER_LEASE: &str = "outboxd_outcomes_after_lease_total";
    pub const LANE_HANDOFFS: &str = "outboxd_lane_handoffs_total";
    pub const DB_ERRORS: &str = "outboxd_db_errors_total";
    pub const RETENTION_DELETED: &str = "outboxd_retention_deleted_total";
    pub const STATS_LEADER: &str = "outboxd_stats_leader";
    pub const STATS_LAST_SUCCESS: &str = "outboxd_stats_last_success_timestamp_seconds";
    pub const OUTBOX_LAG: &str = "outboxd_outbox_lag_seconds";
    pub const DELIVERIES_PENDING: &str = "outboxd_deliveries_pending";
    pub const DELIVERIES_DELIVERING: &str = "outboxd_deliveries_delivering";
    pub const DELIVERIES_DEAD: &str = "outboxd_deliveries_dead";
    pub const OLDEST_PENDING_AGE: &str = "outboxd_oldest_pending_delivery_age_seconds";
    pub const ENDPOINT_PENDING: &str = "outboxd_endpoint_deliveries_pending";
    pub const ENDPOINT_DEAD: &str = "outboxd_endpoint_deliveries_dead";
    pub const INBOUND_REQUESTS: &str = "outboxd_inbound_requests_total";
    pub const INBOUND_COMMIT: &str = "outboxd_inbound_commit_seconds";
    pub const INBOUND_BATCH_SIZE: &str = "outboxd_inbound_batch_size";

    /// Every family above.
    #[cfg(test)]
    pub const ALL: &[&str] = &[
        BUILD_INFO,
        READY,
        SCHEMA_VERSION,
        EVENTS_ROUTED,
        DELIVERIES_CREATED,
        DELIVERIES_FILTERED,
        FILTER_ERRORS,
        ATTEMPTS,
        ATTEMPT_ERRORS,
        DELIVERIES_COMPLETED,
        ATTEMPT_DURATION,
        DELIVERY_LATENCY,
        ENDPOINT_CIRCUIT_STATE,
        ENDPOINT_CIRCUITS,
        IN_FLIGHT,
        POOL_CONNECTIONS,
        POOL_MAX,
        POOL_WAITING,
        LEASES_RESCUED,
        OUTCOMES_AFTER_LEASE,
        LANE_HANDOFFS,
        DB_ERRORS,
        RETENTION_DELETED,
        STATS_LEADER,
        STATS_LAST_SUCCESS,
        OUTBOX_LAG,
        DELIVERIES_PENDING,
        DELIVERIES_DELIVERING,
        DELIVERIES_DEAD,
        OLDEST_PENDING_AGE,
        ENDPOINT_PENDING,
        ENDPOINT_DEAD,
        INBOUND_REQUESTS,
        INBOUND_COMMIT,
        INBOUND_BATCH_SIZE,
    ];
}

/// The tasks that count database errors (`outboxd_db_errors_total{task}`).
pub const DB_ERROR_TASKS: &[&str] = &[
    "router",
    "claim",
    "record",
    "rescuer",
    "retention",
    "stats",
    "catalog",
    "listen",
    "inbound",
];

/// The tables retention deletes from (`outboxd_retention_deleted_total{table}`).
pub const RETENTION_TABLES: &[&str] = &[
    "deliveries",
    "attempts",
    "events",
    "filter_errors",
    "inbound_requests",
];

/// Counts a database error of `task` (one of [`DB_ERROR_TASKS`]).
pub fn db_error(task: &'static str) {
    metrics::counter!(names::DB_ERRORS, "task" => task).increment(1);
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle (several engines in one
/// test process share it). `error_kinds` are the values of `outboxd_attempt_errors_total{kind}`,
/// registered at 0 like every other known label set.
pub fn handle(error_kinds: &[&'static str]) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); then
            // our handle renders only what this module writes itself.
            let _ = metrics::set_global_recorder(recorder);
            describe_and_register(error_kinds);
            handle
        })
        .clone()
}

/// Refreshes the `process_*` gauges (CPU, memory, file descriptors, threads, start time).
pub fn collect_process() {
    PROCESS
        .get_or_init(|| {
            let c = metrics_process::Collector::default();
            c.describe();
            c
        })
        .collect();
}

fn describe_and_register(error_kinds: &[&'static str]) {
    use metrics::{counter, describe_counter, describe_gauge, gauge};
    describe_gauge!(
        names::BUILD_INFO,
        "Always 1; the label carries the version."
    );
    gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // (name, help, label, its known values: every one is registered at 0)
    let counters: [(&'static str, &'static str, &'static str, &[&'static str]); 10] = [
        (
            names::EVENTS_ROUTED,
            "Events routed (fanned out to their endpoints) by this replica.",
            "",
            &[],
        ),
        (
            names::DELIVERIES_CREATED,
            "Deliveries created by this replica's routing (one per event and matching endpoint).",
            "",
            &[],
        ),
        (
            names::DELIVERIES_FILTERED,
            "(Event, endpoint) pairs routing left out because none of the matching subscriptions' content filters passed.",
            "",
            &[],
        ),
        (
            names::FILTER_ERRORS,
            "Content filter evaluations that errored at routing (each is a row in outbox.filter_errors).",
            "",
            &[],
        ),
        (
            names::ATTEMPT_ERRORS,
            "Failed HTTP attempts by error kind (as in outbox.attempts.error_kind).",
            "kind",
            error_kinds,
        ),
        (
            names::LEASES_RESCUED,
            "Expired leases (of a replica that died or stalled) returned to pending by this replica.",
            "",
            &[],
        ),
        (
            names::OUTCOMES_AFTER_LEASE,
            "Outcomes written after their lease ran out (another replica may have sent the delivery again).",
            "",
            &[],
        ),
        (
            names::LANE_HANDOFFS,
            "Deliveries leased to this replica by the transaction that recorded their lane's previous delivery (sent without a claim round).",
            "",
            &[],
        ),
        (
            names::DB_ERRORS,
            "Database errors by task (each is retried).",
            "task",
            DB_ERROR_TASKS,
        ),
        (
            names::RETENTION_DELETED,
            "Rows deleted by retention, by table.",
            "table",
            RETENTION_TABLES,
        ),
    ];
    // Its labels are source names (configured at run time) and results: nothing to
    // register at 0 before the first request.
    describe_counter!(
        names::INBOUND_REQUESTS,
        "Requests to the inbound listener by source and result (stored, duplicate, unauthorized, too_large, ...)."
    );
    metrics::describe_histogram!(
        names::INBOUND_COMMIT,
        "Time to store one batch of accepted inbound requests (the group commit)."
    );
    metrics::describe_histogram!(
        names::INBOUND_BATCH_SIZE,
        "Inbound requests stored per commit."
    );
    for (name, help, label, values) in counters {
        describe_counter!(name, help);
        if values.is_empty() {
            counter!(name).absolute(0);
        }
        for value in values {
            counter!(name, label => *value).absolute(0);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The README's table (section "Monitoring") and [`names::ALL`](super::names::ALL) list
    /// the same metrics.
    #[test]
    fn the_readme_documents_every_metric() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Monitoring")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Monitoring section");
        let documented: std::collections::BTreeSet<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|n| n.starts_with("outboxd_"))
            .collect();
        let known: std::collections::BTreeSet<&str> = super::names::ALL.iter().copied().collect();
        assert_eq!(documented, known);
    }
}
