//! The scenarios, one file each, numbered as in BENCHMARKS.md. Each builds its report from
//! measured runs ([`crate::run`]); floor and steady also from the machine's floor
//! ([`crate::floor`]). No scenario imports another.

pub mod floor;
pub mod growth;
pub mod hotkeys;
pub mod isolation;
pub mod latency;
pub mod steady;
