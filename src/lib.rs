//! outboxd: a transactional-outbox webhook sidecar for PostgreSQL.
//!
//! The flow of one event, and the module that owns each step:
//!
//! 1. **publish** — the application INSERTs into `outbox.events` in its own transaction
//!    (`migrations/`: tables, `outbox.publish()`, `outbox.add_endpoint()`).
//! 2. **route** — [`router`] takes visible, unrouted events in id order (one replica at a
//!    time), matches them against the [`catalog`] of endpoints and subscriptions, and creates
//!    one delivery per matching endpoint; per-resource lanes keep order.
//! 3. **claim** — [`claim`] leases due deliveries with `FOR UPDATE SKIP LOCKED`, within
//!    per-endpoint limits; [`dispatch`] runs one worker per delivery.
//! 4. **deliver** — [`delivery`] signs ([`signing`]) and POSTs, through the [`ssrf`] guard.
//! 5. **record** — [`record`] writes outcomes and `outbox.attempts` in batches and hands a
//!    lane over to its next delivery.
//! 6. **retry** — [`retry`] turns a failure into the next attempt time or `dead`; [`circuit`]
//!    stops hammering failing endpoints; [`maintenance`] rescues leases of dead replicas.
//!
//! Around it: [`engine`] (tasks and shutdown), [`config`], [`db`] and [`sql`] (named
//! queries), [`admin`] (`/healthz`, `/readyz`, `/metrics` and the REST admin API `/v1`),
//! [`metrics`], [`embedded_pg`]
//! (the throwaway PostgreSQL of `outboxd demo` and the tests) and [`demo`].
pub mod admin;
pub mod catalog;
pub mod circuit;
pub mod claim;
pub mod config;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod dispatch;
pub mod embedded_pg;
pub mod engine;
pub mod maintenance;
pub mod metrics;
pub mod record;
pub mod retry;
pub mod router;
pub mod signing;
pub mod sql;
pub mod ssrf;
