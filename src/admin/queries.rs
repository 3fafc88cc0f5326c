//! The admin API's named queries, one file each in `sql/admin/`. `ALL` lists them so a test
//! can prepare every one against a freshly migrated schema.

pub const DELIVERY_LIST: &str = include_str!("../../sql/admin/delivery_list.sql");
pub const DELIVERY_OF_ENDPOINT: &str = include_str!("../../sql/admin/delivery_of_endpoint.sql");
pub const ENDPOINT_DELETE: &str = include_str!("../../sql/admin/endpoint_delete.sql");
pub const ENDPOINT_FINISH_ROTATION: &str =
    include_str!("../../sql/admin/endpoint_finish_rotation.sql");
pub const ENDPOINT_GET: &str = include_str!("../../sql/admin/endpoint_get.sql");
pub const ENDPOINT_INSERT: &str = include_str!("../../sql/admin/endpoint_insert.sql");
pub const ENDPOINT_LIST: &str = include_str!("../../sql/admin/endpoint_list.sql");
pub const ENDPOINT_LOCK: &str = include_str!("../../sql/admin/endpoint_lock.sql");
pub const ENDPOINT_RETRY_DEAD: &str = include_str!("../../sql/admin/endpoint_retry_dead.sql");
pub const ENDPOINT_ROTATE_SECRET: &str = include_str!("../../sql/admin/endpoint_rotate_secret.sql");
pub const ENDPOINT_SECRETS: &str = include_str!("../../sql/admin/endpoint_secrets.sql");
pub const ENDPOINT_UPDATE: &str = include_str!("../../sql/admin/endpoint_update.sql");
pub const EVENT_ATTEMPTS: &str = include_str!("../../sql/admin/event_attempts.sql");
pub const EVENT_DELIVERIES: &str = include_str!("../../sql/admin/event_deliveries.sql");
pub const EVENT_GET: &str = include_str!("../../sql/admin/event_get.sql");
pub const NOTIFY_DELIVERIES: &str = include_str!("../../sql/admin/notify_deliveries.sql");
pub const ROUTING_LOCK: &str = include_str!("../../sql/admin/routing_lock.sql");
pub const SUBSCRIPTION_DELETE: &str = include_str!("../../sql/admin/subscription_delete.sql");
pub const SUBSCRIPTION_GET: &str = include_str!("../../sql/admin/subscription_get.sql");
pub const SUBSCRIPTION_INSERT: &str = include_str!("../../sql/admin/subscription_insert.sql");
pub const SUBSCRIPTION_LIST: &str = include_str!("../../sql/admin/subscription_list.sql");
pub const SUBSCRIPTION_LOCK: &str = include_str!("../../sql/admin/subscription_lock.sql");
pub const SUBSCRIPTION_UPDATE: &str = include_str!("../../sql/admin/subscription_update.sql");

/// Every named query, for the prepare-all test.
pub const ALL: &[(&str, &str)] = &[
    ("delivery_list", DELIVERY_LIST),
    ("delivery_of_endpoint", DELIVERY_OF_ENDPOINT),
    ("endpoint_delete", ENDPOINT_DELETE),
    ("endpoint_finish_rotation", ENDPOINT_FINISH_ROTATION),
    ("endpoint_get", ENDPOINT_GET),
    ("endpoint_insert", ENDPOINT_INSERT),
    ("endpoint_list", ENDPOINT_LIST),
    ("endpoint_lock", ENDPOINT_LOCK),
    ("endpoint_retry_dead", ENDPOINT_RETRY_DEAD),
    ("endpoint_rotate_secret", ENDPOINT_ROTATE_SECRET),
    ("endpoint_secrets", ENDPOINT_SECRETS),
    ("endpoint_update", ENDPOINT_UPDATE),
    ("event_attempts", EVENT_ATTEMPTS),
    ("event_deliveries", EVENT_DELIVERIES),
    ("event_get", EVENT_GET),
    ("notify_deliveries", NOTIFY_DELIVERIES),
    ("routing_lock", ROUTING_LOCK),
    ("subscription_delete", SUBSCRIPTION_DELETE),
    ("subscription_get", SUBSCRIPTION_GET),
    ("subscription_insert", SUBSCRIPTION_INSERT),
    ("subscription_list", SUBSCRIPTION_LIST),
    ("subscription_lock", SUBSCRIPTION_LOCK),
    ("subscription_update", SUBSCRIPTION_UPDATE),
];
