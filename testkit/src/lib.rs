//! The one test kit: what the integration tests (`tests/spec`), the library's own unit tests,
//! the benchmark (`tools/bench`) and the chaos soak (`tools/chaos`) run outboxd against.
//!
//! # A tour
//!
//! * [`db`]: PostgreSQL. [`fresh_db`] gives a test a new, migrated database on one throwaway
//!   cluster shared by the whole test run (or on `DATABASE_URL`); [`Cluster`] is a cluster an
//!   instrument owns (fsync, extra settings, fast or immediate restarts, CPU accounting), and
//!   [`create_database`] makes a migrated database on any server ([`create_empty_database`]
//!   an empty one).
//! * [`receiver`]: the webhook receiver. One real HTTP/1.1 server on 127.0.0.1 that verifies
//!   Standard Webhooks signatures (with the independent `standardwebhooks` crate), records what
//!   it got, and answers as a [`Script`] says: statuses, delays, hangs, TCP resets, closes,
//!   trickled, huge and endless bodies. Tests wait on it without sleeping
//!   ([`Receiver::wait_for`]).
//! * [`sidecar`]: the `outboxd` binary as a child process ([`Sidecar`]): a log file, SIGKILL
//!   and SIGTERM, readiness, CPU and peak memory.
//! * [`engine`]: configuration for an in-process [`outboxd::Engine`] in tests.
//! * [`poll`]: waiting for a condition with a deadline, and a free port.
//! * [`process`]: what `/proc` says about a process (CPU seconds, memory), for the bench.
//! * [`proxy`]: a forward proxy (CONNECT and absolute form) that records what it was asked
//!   for; [`tls_receiver`]: a receiver over TLS that can require a client certificate
//!   ([`tls`]'s test CA), for the egress proxy and mutual TLS tests.
//!
//! `use testkit::*` brings in what tests use day to day.

pub mod db;
pub mod engine;
pub mod poll;
pub mod process;
pub mod receiver;
pub mod sidecar;

pub use db::{
    Cluster, PgOptions, Restart, TEMPLATE_DB, TestDb, create_database, create_empty_database,
    drop_database, fresh_db, pg_error,
};
pub use engine::engine_config;
pub use poll::{free_port, wait_until};
pub use receiver::{
    Answer, Answered, Counters, ReceivedRequest, Receiver, ReceiverBuilder, Reply, Script, always,
    behaviour, script, sequence,
};
pub use sidecar::{Sidecar, SidecarCommand, outboxd_binary, parse_metrics};

pub mod pgbouncer;
pub mod proxy;
pub mod tls;
pub mod tls_receiver;

/// The Standard Webhooks test-vector secret; what tests give endpoints and [`Receiver`]s.
pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
