//! outboxd: a transactional-outbox webhook sidecar for PostgreSQL.
//!
//! The flow of one event, and the module that owns each step:
//!
//! 1. **publish**: the application INSERTs into `outbox.events` in its own transaction
//!    (`migrations/`: tables, `outbox.publish()`, `outbox.add_endpoint()`).
//! 2. **route**: [`router`] takes visible, unrouted events in id order (one replica at a
//!    time), matches them against the [`catalog`] of endpoints and subscriptions
//!    ([`pattern`]; content filters are evaluated by PostgreSQL in the same routing
//!    transaction), and creates one delivery per matching endpoint; per-resource lanes keep
//!    order.
//! 3. **claim**: [`claim`] leases due deliveries with `FOR UPDATE SKIP LOCKED`, within the
//!    limits its pure [`claim::policy`] computes (in-flight slots, [`pacing`], [`circuit`]).
//! 4. **deliver**: a [`worker`] per delivery signs ([`signing`]) and POSTs it
//!    ([`delivery::http`]) through the [`ssrf`] guard (and the [`egress`] proxy, when one is
//!    set); the [`delivery`] module owns the
//!    state machine and its data ([`delivery::Outcome`]).
//! 5. **record**: [`record`] writes outcomes and `outbox.attempts` in batches and hands a
//!    lane over to its next delivery.
//! 6. **retry**: [`retry`] turns a failure into the next attempt time or `dead`;
//!    [`maintenance`] rescues leases of dead replicas and deletes old work.
//!
//! Around it: [`replica`] (the state one replica's tasks share), [`engine`] (starts the
//! tasks, stops them), [`wakeup`] (LISTEN/NOTIFY), [`config`], [`db`] (TLS, poolers, the one
//! way a query is sent, migrations, the role's privileges), [`sql`] (every named query),
//! [`locks`] (every advisory lock), [`readiness`] (what `/readyz` says), [`admin`]
//! (`/healthz`, `/readyz`, `/metrics`, the REST API `/v1`), [`eventlog`] (search, detail and
//! actions on every webhook: the query layer behind `/v1` and the [`console`] at `/ui/`),
//! [`metrics`], [`embedded_pg`] (a
//! throwaway PostgreSQL) and [`demo`].
//! `ARCHITECTURE.md` draws it; the `layers` test keeps imports pointing downwards only.
//!
//! # The library's API
//!
//! The binary `outboxd` is a thin shell over this library, and a program can embed the
//! sidecar the same way. What it needs is exported here, and nothing else:
//! [`Config`] (built from [`RunArgs`], the flags and `OUTBOXD_*` variables, validated into a
//! [`ConfigError`] naming the variable), [`Engine`] (start, stop), [`migrate`] and
//! [`check_schema`] over a [`connect`]ed client ([`Connector`]: a `DATABASE_URL` with its TLS
//! parameters and [`Pooler`] mode), [`embedded_pg`] and [`demo`]; and two documents:
//! [`console_link`] and [`openapi_document`]. Every other module is internal (`pub(crate)`).

pub(crate) mod admin;
pub(crate) mod catalog;
pub(crate) mod circuit;
pub(crate) mod claim;
pub(crate) mod config;
pub(crate) mod console;
pub(crate) mod db;
pub(crate) mod delivery;
pub mod demo;
pub(crate) mod egress;
pub mod embedded_pg;
pub(crate) mod engine;
pub(crate) mod eventlog;
pub(crate) mod inbound;
pub(crate) mod locks;
pub(crate) mod maintenance;
pub(crate) mod mask;
pub(crate) mod metrics;
pub(crate) mod pacing;
pub(crate) mod pattern;
pub(crate) mod portal;
pub(crate) mod readiness;
pub(crate) mod record;
pub(crate) mod replica;
pub(crate) mod retry;
pub(crate) mod router;
pub(crate) mod signing;
pub(crate) mod sql;
pub(crate) mod ssrf;
pub(crate) mod wakeup;
pub(crate) mod worker;

#[cfg(test)]
mod layers;
#[cfg(test)]
mod test_support;

pub use config::{Config, ConfigError, InboundConfig, RunArgs};
pub use db::{
    Connector, DbError, Pooler, Schema, check_schema, connect, latest_migration, migrate,
};
pub use engine::{Engine, EngineError};
pub use retry::RetryPolicy;

/// A one-time sign-in link to the console (`/ui/`) of an outboxd with this admin token,
/// listening at `base_url` (e.g. `http://127.0.0.1:9090`); valid for 10 minutes. What
/// `outboxd demo` and `outboxd console-link` print.
pub fn console_link(admin_token: &str, base_url: &str) -> String {
    console::session::login_link(admin_token, base_url, chrono::Utc::now().timestamp())
}

/// The OpenAPI 3.1 document of `/v1`, as served at `/v1/openapi.json`.
pub fn openapi_document() -> String {
    admin::openapi_document()
}
