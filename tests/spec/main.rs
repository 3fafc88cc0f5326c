//! The SPEC, executable: one integration-test binary (one link step, one harness) on real
//! PostgreSQL and real HTTP receivers from [`testkit`].

mod admin;
mod browser;
mod console;
mod console_sources;
mod console_support;
mod database;
mod egress;
mod engine;
mod event_log;
mod filters;
mod hot_lane;
mod inbound;
mod metrics;
mod portal;
mod support;

/// The `outboxd` binary Cargo built for this test binary.
pub const OUTBOXD: &str = env!("CARGO_BIN_EXE_outboxd");
