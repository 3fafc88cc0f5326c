//! Helpers for the library's own tests.

use proptest::test_runner::Config as ProptestConfig;

/// A proptest config with `default` cases, or `PROPTEST_CASES` when set. Failures are printed
/// shrunk; no regression files are written into the repository.
pub(crate) fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
