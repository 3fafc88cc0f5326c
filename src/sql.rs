//! The engine's named queries, one file each in `sql/engine/`. `ALL` lists them so a test can
//! prepare every one against a freshly migrated schema.

pub const CATALOG_ENDPOINTS: &str = include_str!("../sql/engine/catalog_endpoints.sql");
pub const CATALOG_VERSION: &str = include_str!("../sql/engine/catalog_version.sql");
pub const CLAIM: &str = include_str!("../sql/engine/claim.sql");
pub const FETCH_PAYLOAD: &str = include_str!("../sql/engine/fetch_payload.sql");
pub const NOTIFY_DELIVERIES: &str = include_str!("../sql/engine/notify_deliveries.sql");
pub const RECORD_ATTEMPTS: &str = include_str!("../sql/engine/record_attempts.sql");
pub const RECORD_COMPLETE: &str = include_str!("../sql/engine/record_complete.sql");
pub const RECORD_GONE: &str = include_str!("../sql/engine/record_gone.sql");
pub const RECORD_LOCK_LANES: &str = include_str!("../sql/engine/record_lock_lanes.sql");
pub const RELEASE_LEASES: &str = include_str!("../sql/engine/release_leases.sql");
pub const RELEASE_UNKNOWN_LEASES: &str = include_str!("../sql/engine/release_unknown_leases.sql");
pub const RESCUE_EXPIRED_LEASES: &str = include_str!("../sql/engine/rescue_expired_leases.sql");
pub const RETENTION_BOUNDARY: &str = include_str!("../sql/engine/retention_boundary.sql");
pub const RETENTION_DEAD: &str = include_str!("../sql/engine/retention_dead.sql");
pub const RETENTION_EVENTS: &str = include_str!("../sql/engine/retention_events.sql");
pub const RETENTION_LANES: &str = include_str!("../sql/engine/retention_lanes.sql");
pub const RETENTION_LOCK: &str = include_str!("../sql/engine/retention_lock.sql");
pub const RETENTION_SUCCEEDED: &str = include_str!("../sql/engine/retention_succeeded.sql");
pub const ROUTE_ALREADY_ROUTED: &str = include_str!("../sql/engine/route_already_routed.sql");
pub const ROUTE_FETCH: &str = include_str!("../sql/engine/route_fetch.sql");
pub const ROUTE_INSERT: &str = include_str!("../sql/engine/route_insert.sql");
pub const ROUTE_LANES: &str = include_str!("../sql/engine/route_lanes.sql");
pub const ROUTE_LOCK: &str = include_str!("../sql/engine/route_lock.sql");
pub const ROUTE_MARK: &str = include_str!("../sql/engine/route_mark.sql");
pub const STATS: &str = include_str!("../sql/engine/stats.sql");

/// Every named query, for the prepare-all test.
pub const ALL: &[(&str, &str)] = &[
    ("catalog_endpoints", CATALOG_ENDPOINTS),
    ("catalog_version", CATALOG_VERSION),
    ("claim", CLAIM),
    ("fetch_payload", FETCH_PAYLOAD),
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
    ("retention_lanes", RETENTION_LANES),
    ("retention_lock", RETENTION_LOCK),
    ("retention_succeeded", RETENTION_SUCCEEDED),
    ("route_already_routed", ROUTE_ALREADY_ROUTED),
    ("route_fetch", ROUTE_FETCH),
    ("route_insert", ROUTE_INSERT),
    ("route_lanes", ROUTE_LANES),
    ("route_lock", ROUTE_LOCK),
    ("route_mark", ROUTE_MARK),
    ("stats", STATS),
];
