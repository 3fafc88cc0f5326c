//! Every PostgreSQL advisory lock outboxd takes, in one list: the key and what it guards.
//! Queries take the key as a parameter (`pg_try_advisory_xact_lock($1)`), so each number is
//! written here only.
//!
//! | key | name | kind | guards |
//! |---|---|---|---|
//! | 7355608001 | [`MIGRATE`] | session, blocking | `outboxd migrate` / `OUTBOXD_MIGRATE`: one migration run at a time (several replicas may start together) |
//! | 7355608002 | [`ROUTER`] | transaction, try | routing: one router at a time (`sql/engine/route_lock.sql`); the admin API also waits for it before deleting an endpoint, so no routing batch inserts deliveries for an endpoint it deletes (`sql/admin/routing_lock.sql`) |
//! | 7355608003 | [`RETENTION`] | transaction, try | retention: one replica deletes old work at a time (`sql/engine/retention_lock.sql`) |
//! | — | (not a lock) | lease row | the stats exporter: one replica at a time holds `outbox.leaders` row `stats` (`sql/engine/stats_lease.sql`); a row, not a session lock, so that it needs no dedicated connection and survives a transaction-mode pooler |
//! | 7355608101 | (test kit) | session, shared/exclusive | the test kit's template database while it is rebuilt (`testkit`, not the product) |

/// One migration run at a time.
pub(crate) const MIGRATE: i64 = 7_355_608_001;
/// One router at a time; endpoint deletion waits for it.
pub(crate) const ROUTER: i64 = 7_355_608_002;
/// One retention batch at a time.
pub(crate) const RETENTION: i64 = 7_355_608_003;
