//! Every named query, one file each under `sql/`, loaded with `include_str!`: the engine's
//! (`sql/engine/`, at the top of this module), the admin API's ([`admin`], `sql/admin/`), the
//! event log's ([`eventlog`], `sql/eventlog/`: the console and the search API), the inbound
//! listener's ([`inbound`], `sql/inbound/`) and the demo's ([`demo`], `sql/demo/`). No query
//! string is written anywhere else in `src/`.
//! The test at the bottom prepares every one of them against a freshly migrated schema, so a
//! typo or a schema drift fails CI, not production. The DBAs' cookbook (`sql/cookbook/`) is
//! run by the integration tests.

pub(crate) const CATALOG_ENDPOINTS: &str = include_str!("../sql/engine/catalog_endpoints.sql");
pub(crate) const CATALOG_EVENT_TYPES: &str = include_str!("../sql/engine/catalog_event_types.sql");
pub(crate) const CATALOG_VERSION: &str = include_str!("../sql/engine/catalog_version.sql");
pub(crate) const CLAIM: &str = include_str!("../sql/engine/claim.sql");
pub(crate) const FETCH_PAYLOAD: &str = include_str!("../sql/engine/fetch_payload.sql");
pub(crate) const MIGRATE_GRANT: &str = include_str!("../sql/engine/migrate_grant.sql");
pub(crate) const FETCH_REQUEST_BODY: &str = include_str!("../sql/engine/fetch_request_body.sql");
pub(crate) const MIGRATE_LOCK: &str = include_str!("../sql/engine/migrate_lock.sql");
pub(crate) const MISSING_PRIVILEGES: &str = include_str!("../sql/engine/missing_privileges.sql");
pub(crate) const NOTIFY_DELIVERIES: &str = include_str!("../sql/engine/notify_deliveries.sql");
pub(crate) const RECORD_ATTEMPTS: &str = include_str!("../sql/engine/record_attempts.sql");
pub(crate) const RECORD_COMPLETE: &str = include_str!("../sql/engine/record_complete.sql");
pub(crate) const RECORD_GONE: &str = include_str!("../sql/engine/record_gone.sql");
pub(crate) const RECORD_LOCK_LANES: &str = include_str!("../sql/engine/record_lock_lanes.sql");
pub(crate) const RELEASE_LEASES: &str = include_str!("../sql/engine/release_leases.sql");
pub(crate) const RELEASE_UNKNOWN_LEASES: &str =
    include_str!("../sql/engine/release_unknown_leases.sql");
pub(crate) const RESCUE_EXPIRED_LEASES: &str =
    include_str!("../sql/engine/rescue_expired_leases.sql");
pub(crate) const RETENTION_BOUNDARY: &str = include_str!("../sql/engine/retention_boundary.sql");
pub(crate) const RETENTION_DEAD: &str = include_str!("../sql/engine/retention_dead.sql");
pub(crate) const RETENTION_EVENTS: &str = include_str!("../sql/engine/retention_events.sql");
pub(crate) const RETENTION_FILTER_ERRORS: &str =
    include_str!("../sql/engine/retention_filter_errors.sql");
pub(crate) const RETENTION_INBOUND: &str = include_str!("../sql/engine/retention_inbound.sql");
pub(crate) const RETENTION_LANES: &str = include_str!("../sql/engine/retention_lanes.sql");
pub(crate) const RETENTION_LOCK: &str = include_str!("../sql/engine/retention_lock.sql");
pub(crate) const RETENTION_SUCCEEDED: &str = include_str!("../sql/engine/retention_succeeded.sql");
pub(crate) const ROUTE_ALREADY_ROUTED: &str =
    include_str!("../sql/engine/route_already_routed.sql");
pub(crate) const ROUTE_EVENT_TYPES: &str = include_str!("../sql/engine/route_event_types.sql");
pub(crate) const ROUTE_FETCH: &str = include_str!("../sql/engine/route_fetch.sql");
pub(crate) const ROUTE_INSERT: &str = include_str!("../sql/engine/route_insert.sql");
pub(crate) const ROUTE_LOCK: &str = include_str!("../sql/engine/route_lock.sql");
pub(crate) const ROUTE_MARK: &str = include_str!("../sql/engine/route_mark.sql");
pub(crate) const SCHEMA_COMPATIBILITY: &str =
    include_str!("../sql/engine/schema_compatibility.sql");
pub(crate) const SCHEMA_VERSION: &str = include_str!("../sql/engine/schema_version.sql");
pub(crate) const SESSION_SETTINGS: &str = include_str!("../sql/engine/session_settings.sql");
pub(crate) const SESSION_SETTINGS_SHOW: &str =
    include_str!("../sql/engine/session_settings_show.sql");
pub(crate) const STATS: &str = include_str!("../sql/engine/stats.sql");
pub(crate) const STATS_ENDPOINTS: &str = include_str!("../sql/engine/stats_endpoints.sql");
pub(crate) const STATS_LEASE: &str = include_str!("../sql/engine/stats_lease.sql");
pub(crate) const STATS_RELEASE: &str = include_str!("../sql/engine/stats_release.sql");
/// Run by `outboxd migrate` before refinery (a `DO` block: executed, not prepared).
pub(crate) const MIGRATE_PREPARE: &str = include_str!("../sql/migrate/prepare.sql");

/// Every query of this group, for the test that prepares each against the schema.
#[cfg(test)]
pub(crate) const ALL: &[(&str, &str)] = &[
    ("catalog_endpoints", CATALOG_ENDPOINTS),
    ("catalog_event_types", CATALOG_EVENT_TYPES),
    ("catalog_version", CATALOG_VERSION),
    ("claim", CLAIM),
    ("fetch_payload", FETCH_PAYLOAD),
    ("migrate_grant", MIGRATE_GRANT),
    ("fetch_request_body", FETCH_REQUEST_BODY),
    ("migrate_lock", MIGRATE_LOCK),
    ("missing_privileges", MISSING_PRIVILEGES),
    ("notify_deliveries", NOTIFY_DELIVERIES),
    ("record_attempts", RECORD_ATTEMPTS),
    ("record_complete", RECORD_COMPLETE),
    ("record_gone", RECORD_GONE),
    ("record_lock_lanes", RECORD_LOCK_LANES),
    ("release_leases", RELEASE_LEASES),
    ("release_unknown_leases", RELEASE_UNKNOWN_LEASES),
    ("rescue_expired_leases", RESCUE_EXPIRED_LEASES),
    ("retention_boundary", RETENTION_BOUNDARY),
    ("retention_dead", RETENTION_DEAD),
    ("retention_events", RETENTION_EVENTS),
    ("retention_filter_errors", RETENTION_FILTER_ERRORS),
    ("retention_inbound", RETENTION_INBOUND),
    ("retention_lanes", RETENTION_LANES),
    ("retention_lock", RETENTION_LOCK),
    ("retention_succeeded", RETENTION_SUCCEEDED),
    ("route_already_routed", ROUTE_ALREADY_ROUTED),
    ("route_event_types", ROUTE_EVENT_TYPES),
    ("route_fetch", ROUTE_FETCH),
    ("route_insert", ROUTE_INSERT),
    ("route_lock", ROUTE_LOCK),
    ("route_mark", ROUTE_MARK),
    ("schema_compatibility", SCHEMA_COMPATIBILITY),
    ("schema_version", SCHEMA_VERSION),
    ("session_settings", SESSION_SETTINGS),
    ("session_settings_show", SESSION_SETTINGS_SHOW),
    ("stats", STATS),
    ("stats_endpoints", STATS_ENDPOINTS),
    ("stats_lease", STATS_LEASE),
    ("stats_release", STATS_RELEASE),
];

/// The admin API's queries (`sql/admin/`). Writes that must reach the claimer use the
/// engine's [`NOTIFY_DELIVERIES`](super::NOTIFY_DELIVERIES).
pub(crate) mod admin {
    pub(crate) const DELIVERY_LIST: &str = include_str!("../sql/admin/delivery_list.sql");
    pub(crate) const ENDPOINT_DELETE: &str = include_str!("../sql/admin/endpoint_delete.sql");
    pub(crate) const EVENT_TYPE_LIST: &str = include_str!("../sql/admin/event_type_list.sql");
    pub(crate) const EVENT_TYPE_REGISTER: &str =
        include_str!("../sql/admin/event_type_register.sql");
    pub(crate) const EVENT_TYPE_UNREGISTER: &str =
        include_str!("../sql/admin/event_type_unregister.sql");
    pub(crate) const ENDPOINT_FINISH_ROTATION: &str =
        include_str!("../sql/admin/endpoint_finish_rotation.sql");
    pub(crate) const ENDPOINT_GET: &str = include_str!("../sql/admin/endpoint_get.sql");
    pub(crate) const ENDPOINT_INSERT: &str = include_str!("../sql/admin/endpoint_insert.sql");
    pub(crate) const ENDPOINT_LIST: &str = include_str!("../sql/admin/endpoint_list.sql");
    pub(crate) const ENDPOINT_LOCK: &str = include_str!("../sql/admin/endpoint_lock.sql");
    pub(crate) const ENDPOINT_ROTATE_SECRET: &str =
        include_str!("../sql/admin/endpoint_rotate_secret.sql");
    pub(crate) const ENDPOINT_SECRETS: &str = include_str!("../sql/admin/endpoint_secrets.sql");
    pub(crate) const ENDPOINT_UPDATE: &str = include_str!("../sql/admin/endpoint_update.sql");
    pub(crate) const EVENT_ATTEMPTS: &str = include_str!("../sql/admin/event_attempts.sql");
    pub(crate) const EVENT_DELIVERIES: &str = include_str!("../sql/admin/event_deliveries.sql");
    pub(crate) const EVENT_GET: &str = include_str!("../sql/admin/event_get.sql");
    pub(crate) const FILTER_CHECK: &str = include_str!("../sql/admin/filter_check.sql");
    pub(crate) const ROUTING_LOCK: &str = include_str!("../sql/admin/routing_lock.sql");
    pub(crate) const SOURCE_DELETE: &str = include_str!("../sql/admin/source_delete.sql");
    pub(crate) const SOURCE_GET: &str = include_str!("../sql/admin/source_get.sql");
    pub(crate) const SOURCE_INSERT: &str = include_str!("../sql/admin/source_insert.sql");
    pub(crate) const SOURCE_LIST: &str = include_str!("../sql/admin/source_list.sql");
    pub(crate) const SOURCE_LOCK: &str = include_str!("../sql/admin/source_lock.sql");
    pub(crate) const SOURCE_REPLAY: &str = include_str!("../sql/admin/source_replay.sql");
    pub(crate) const SOURCE_UPDATE: &str = include_str!("../sql/admin/source_update.sql");
    pub(crate) const SUBSCRIPTION_DELETE: &str =
        include_str!("../sql/admin/subscription_delete.sql");
    pub(crate) const SUBSCRIPTION_GET: &str = include_str!("../sql/admin/subscription_get.sql");
    pub(crate) const SUBSCRIPTION_INSERT: &str =
        include_str!("../sql/admin/subscription_insert.sql");
    pub(crate) const SUBSCRIPTION_LIST: &str = include_str!("../sql/admin/subscription_list.sql");
    pub(crate) const SUBSCRIPTION_LOCK: &str = include_str!("../sql/admin/subscription_lock.sql");
    pub(crate) const SUBSCRIPTION_UPDATE: &str =
        include_str!("../sql/admin/subscription_update.sql");
    pub(crate) const PORTAL_SET_KEY: &str = include_str!("../sql/admin/portal_set_key.sql");

    /// Every query of this group, for the test that prepares each against the schema.
    #[cfg(test)]
    pub(crate) const ALL: &[(&str, &str)] = &[
        ("delivery_list", DELIVERY_LIST),
        ("endpoint_delete", ENDPOINT_DELETE),
        ("event_type_list", EVENT_TYPE_LIST),
        ("event_type_register", EVENT_TYPE_REGISTER),
        ("event_type_unregister", EVENT_TYPE_UNREGISTER),
        ("endpoint_finish_rotation", ENDPOINT_FINISH_ROTATION),
        ("endpoint_get", ENDPOINT_GET),
        ("endpoint_insert", ENDPOINT_INSERT),
        ("endpoint_list", ENDPOINT_LIST),
        ("endpoint_lock", ENDPOINT_LOCK),
        ("endpoint_rotate_secret", ENDPOINT_ROTATE_SECRET),
        ("endpoint_secrets", ENDPOINT_SECRETS),
        ("endpoint_update", ENDPOINT_UPDATE),
        ("event_attempts", EVENT_ATTEMPTS),
        ("event_deliveries", EVENT_DELIVERIES),
        ("event_get", EVENT_GET),
        ("filter_check", FILTER_CHECK),
        ("portal_set_key", PORTAL_SET_KEY),
        ("routing_lock", ROUTING_LOCK),
        ("source_delete", SOURCE_DELETE),
        ("source_get", SOURCE_GET),
        ("source_insert", SOURCE_INSERT),
        ("source_list", SOURCE_LIST),
        ("source_lock", SOURCE_LOCK),
        ("source_replay", SOURCE_REPLAY),
        ("source_update", SOURCE_UPDATE),
        ("subscription_delete", SUBSCRIPTION_DELETE),
        ("subscription_get", SUBSCRIPTION_GET),
        ("subscription_insert", SUBSCRIPTION_INSERT),
        ("subscription_list", SUBSCRIPTION_LIST),
        ("subscription_lock", SUBSCRIPTION_LOCK),
        ("subscription_update", SUBSCRIPTION_UPDATE),
    ];
}

/// The inbound listener's queries (`sql/inbound/`).
pub(crate) mod inbound {
    pub(crate) const ACCEPT: &str = include_str!("../sql/inbound/accept.sql");
    pub(crate) const SOURCE_ALL: &str = include_str!("../sql/inbound/source_all.sql");
    pub(crate) const SOURCE_ONE: &str = include_str!("../sql/inbound/source_one.sql");
    pub(crate) const WAKE_ROUTER: &str = include_str!("../sql/inbound/wake_router.sql");
    pub(crate) const RECENT_REQUESTS: &str = include_str!("../sql/inbound/recent_requests.sql");

    /// Every query of this group, for the test that prepares each against the schema.
    #[cfg(test)]
    pub(crate) const ALL: &[(&str, &str)] = &[
        ("accept", ACCEPT),
        ("source_all", SOURCE_ALL),
        ("source_one", SOURCE_ONE),
        ("wake_router", WAKE_ROUTER),
        ("recent_requests", RECENT_REQUESTS),
    ];
}

/// The event log's queries (`sql/eventlog/`), behind the console and the `/v1` search and
/// actions ([`crate::eventlog`]). The searches share one filter: each `search_*.sql` has
/// `/*filter*/` where `search_filter.sql` goes, put in once at first use.
pub(crate) mod eventlog {
    use std::sync::LazyLock;

    /// Not a query: the filter part of every search (see the file).
    pub(crate) const SEARCH_FILTER: &str = include_str!("../sql/eventlog/search_filter.sql");

    fn with_filter(query: &str) -> String {
        // The fragment's own comment lines stay out of the WHERE clause.
        let filter: String = SEARCH_FILTER
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        query.replace("/*filter*/", &format!("(\n{filter}\n)"))
    }

    pub(crate) static SEARCH_EVENTS: LazyLock<String> =
        LazyLock::new(|| with_filter(include_str!("../sql/eventlog/search_events.sql")));
    pub(crate) static SEARCH_TYPES: LazyLock<String> =
        LazyLock::new(|| with_filter(include_str!("../sql/eventlog/search_types.sql")));
    pub(crate) static SEARCH_ENDPOINT: LazyLock<String> =
        LazyLock::new(|| with_filter(include_str!("../sql/eventlog/search_endpoint.sql")));
    pub(crate) static SEARCH_STATUS: LazyLock<String> =
        LazyLock::new(|| with_filter(include_str!("../sql/eventlog/search_status.sql")));
    pub(crate) static SEARCH_TENANT_STATUS: LazyLock<String> =
        LazyLock::new(|| with_filter(include_str!("../sql/eventlog/search_tenant_status.sql")));
    pub(crate) const CATALOG_ENTRIES: &str = include_str!("../sql/eventlog/catalog_entries.sql");
    pub(crate) const DELIVERIES_DETAIL: &str =
        include_str!("../sql/eventlog/deliveries_detail.sql");
    pub(crate) const DELIVERIES_REQUEUE: &str =
        include_str!("../sql/eventlog/deliveries_requeue.sql");
    pub(crate) const DELIVERY_ATTEMPTS: &str =
        include_str!("../sql/eventlog/delivery_attempts.sql");
    pub(crate) const DELIVERY_RETRY_NOW: &str =
        include_str!("../sql/eventlog/delivery_retry_now.sql");
    pub(crate) const ENDPOINT_DEAD_DELIVERIES: &str =
        include_str!("../sql/eventlog/endpoint_dead_deliveries.sql");
    pub(crate) const ENDPOINT_DELETE: &str = include_str!("../sql/eventlog/endpoint_delete.sql");
    pub(crate) const ENDPOINT_EDIT: &str = include_str!("../sql/eventlog/endpoint_edit.sql");
    pub(crate) const ENDPOINT_HEALTH: &str = include_str!("../sql/eventlog/endpoint_health.sql");
    pub(crate) const ENDPOINT_SECRETS: &str = include_str!("../sql/eventlog/endpoint_secrets.sql");
    pub(crate) const SUBSCRIPTIONS_REPLACE: &str =
        include_str!("../sql/eventlog/subscriptions_replace.sql");
    pub(crate) const ENDPOINT_LOCK: &str = include_str!("../sql/eventlog/endpoint_lock.sql");
    pub(crate) const ENDPOINT_SET_ENABLED: &str =
        include_str!("../sql/eventlog/endpoint_set_enabled.sql");
    pub(crate) const ENDPOINT_SUBSCRIPTIONS: &str =
        include_str!("../sql/eventlog/endpoint_subscriptions.sql");
    pub(crate) const ENDPOINT_TEST_EVENT: &str =
        include_str!("../sql/eventlog/endpoint_test_event.sql");
    pub(crate) const EVENT_GET: &str = include_str!("../sql/eventlog/event_get.sql");
    pub(crate) const EVENT_PAYLOAD: &str = include_str!("../sql/eventlog/event_payload.sql");
    pub(crate) const EVENT_TYPES: &str = include_str!("../sql/eventlog/event_types.sql");
    pub(crate) const PAGE_DELIVERIES: &str = include_str!("../sql/eventlog/page_deliveries.sql");
    pub(crate) const REPLAY_EVENTS: &str = include_str!("../sql/eventlog/replay_events.sql");
    pub(crate) const REPLAY_START: &str = include_str!("../sql/eventlog/replay_start.sql");
    pub(crate) const REPLAY_SUBSCRIPTIONS: &str =
        include_str!("../sql/eventlog/replay_subscriptions.sql");
    pub(crate) const SEARCH_TIME_BOUNDS: &str =
        include_str!("../sql/eventlog/search_time_bounds.sql");
    pub(crate) const SEARCH_TYPE_COUNTS: &str =
        include_str!("../sql/eventlog/search_type_counts.sql");

    /// Files that are parts of queries, not queries (prepared inside the ones using them).
    #[cfg(test)]
    pub(crate) const FRAGMENTS: &[&str] = &["search_filter"];

    /// Every query of this group, for the test that prepares each against the schema.
    #[cfg(test)]
    pub(crate) fn all() -> Vec<(&'static str, &'static str)> {
        vec![
            ("catalog_entries", CATALOG_ENTRIES),
            ("deliveries_detail", DELIVERIES_DETAIL),
            ("deliveries_requeue", DELIVERIES_REQUEUE),
            ("delivery_attempts", DELIVERY_ATTEMPTS),
            ("delivery_retry_now", DELIVERY_RETRY_NOW),
            ("endpoint_dead_deliveries", ENDPOINT_DEAD_DELIVERIES),
            ("endpoint_delete", ENDPOINT_DELETE),
            ("endpoint_edit", ENDPOINT_EDIT),
            ("endpoint_health", ENDPOINT_HEALTH),
            ("endpoint_secrets", ENDPOINT_SECRETS),
            ("endpoint_lock", ENDPOINT_LOCK),
            ("endpoint_set_enabled", ENDPOINT_SET_ENABLED),
            ("endpoint_subscriptions", ENDPOINT_SUBSCRIPTIONS),
            ("endpoint_test_event", ENDPOINT_TEST_EVENT),
            ("event_get", EVENT_GET),
            ("event_payload", EVENT_PAYLOAD),
            ("event_types", EVENT_TYPES),
            ("page_deliveries", PAGE_DELIVERIES),
            ("replay_events", REPLAY_EVENTS),
            ("replay_start", REPLAY_START),
            ("replay_subscriptions", REPLAY_SUBSCRIPTIONS),
            ("search_endpoint", SEARCH_ENDPOINT.as_str()),
            ("search_events", SEARCH_EVENTS.as_str()),
            ("search_status", SEARCH_STATUS.as_str()),
            ("search_tenant_status", SEARCH_TENANT_STATUS.as_str()),
            ("search_time_bounds", SEARCH_TIME_BOUNDS),
            ("search_type_counts", SEARCH_TYPE_COUNTS),
            ("search_types", SEARCH_TYPES.as_str()),
            ("subscriptions_replace", SUBSCRIPTIONS_REPLACE),
        ]
    }
}

/// `outboxd demo`'s queries (`sql/demo/`).
pub(crate) mod demo {
    pub(crate) const ADD_ENDPOINT: &str = include_str!("../sql/demo/add_endpoint.sql");
    pub(crate) const ALL_TENANTS: &str = include_str!("../sql/demo/all_tenants.sql");
    pub(crate) const ATTEMPTS: &str = include_str!("../sql/demo/attempts.sql");
    pub(crate) const COUNT_DELIVERIES: &str = include_str!("../sql/demo/count_deliveries.sql");
    pub(crate) const DELIVERIES: &str = include_str!("../sql/demo/deliveries.sql");
    pub(crate) const INSERT_INVOICE: &str = include_str!("../sql/demo/insert_invoice.sql");
    pub(crate) const LOAD_BATCH: &str = include_str!("../sql/demo/load_batch.sql");
    pub(crate) const PUBLISH_CANCELLED: &str = include_str!("../sql/demo/publish_cancelled.sql");
    pub(crate) const PUBLISH_ORDER: &str = include_str!("../sql/demo/publish_order.sql");
    pub(crate) const PUBLISH_OVERDUE: &str = include_str!("../sql/demo/publish_overdue.sql");
    pub(crate) const RESET_ENDPOINTS: &str = include_str!("../sql/demo/reset_endpoints.sql");
    pub(crate) const UNFINISHED: &str = include_str!("../sql/demo/unfinished.sql");

    /// Every query of this group, for the test that prepares each against the schema.
    #[cfg(test)]
    pub(crate) const ALL: &[(&str, &str)] = &[
        ("add_endpoint", ADD_ENDPOINT),
        ("all_tenants", ALL_TENANTS),
        ("attempts", ATTEMPTS),
        ("count_deliveries", COUNT_DELIVERIES),
        ("deliveries", DELIVERIES),
        ("insert_invoice", INSERT_INVOICE),
        ("load_batch", LOAD_BATCH),
        ("publish_cancelled", PUBLISH_CANCELLED),
        ("publish_order", PUBLISH_ORDER),
        ("publish_overdue", PUBLISH_OVERDUE),
        ("reset_endpoints", RESET_ENDPOINTS),
        ("unfinished", UNFINISHED),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
        vec![
            ("engine", ALL.to_vec()),
            ("admin", admin::ALL.to_vec()),
            ("eventlog", eventlog::all()),
            ("inbound", inbound::ALL.to_vec()),
            ("demo", demo::ALL.to_vec()),
        ]
    }

    #[tokio::test]
    async fn every_named_query_prepares_against_the_migrated_schema() {
        let db = testkit::fresh_db().await;
        let client = db.client().await;
        for (group, queries) in groups() {
            assert!(!queries.is_empty(), "sql/{group}/ lists no query");
            for (name, sql) in queries {
                if let Err(e) = client.prepare(sql).await {
                    let why = e.as_db_error().map_or_else(
                        || e.to_string(),
                        |db| format!("{}: {}", db.code().code(), db.message()),
                    );
                    panic!("sql/{group}/{name}.sql: {why}");
                }
            }
        }
    }

    /// Every file under `sql/engine`, `sql/admin`, `sql/eventlog`, `sql/inbound` and `sql/demo` is listed in `ALL` (and so
    /// prepared by the test above): a query file nobody loads is dead or forgotten.
    #[test]
    fn every_query_file_is_listed() {
        for (group, queries) in groups() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("sql")
                .join(group);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".sql").map(str::to_owned))
                .collect();
            files.sort();
            let mut listed: Vec<String> = queries.iter().map(|(n, _)| (*n).to_owned()).collect();
            if group == "eventlog" {
                listed.extend(eventlog::FRAGMENTS.iter().map(|f| (*f).to_owned()));
            }
            listed.sort();
            assert_eq!(files, listed, "sql/{group}/");
        }
    }
}
