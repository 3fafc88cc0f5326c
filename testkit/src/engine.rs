//! Configuration for an in-process [`outboxd::Engine`] in tests, parsed by the same
//! flags `outboxd run` takes, so a test says what it changes in the words an operator would.

use crate::TestDb;

#[derive(clap::Parser)]
#[command(args_override_self = true)]
struct EngineCli {
    #[command(flatten)]
    run: outboxd::RunArgs,
}

/// Engine configuration for tests: listener on a free port, fast polling and retries, no
/// jitter; `extra` flags override (later flags win).
pub fn engine_config(db: &TestDb, extra: &[&str]) -> outboxd::Config {
    use clap::Parser;
    let mut args = vec![
        "outboxd",
        "--listen",
        "127.0.0.1:0",
        "--poll-interval",
        "50ms",
        "--retry-schedule",
        "50ms,100ms,200ms",
        "--retry-jitter",
        "0",
        "--request-timeout",
        "2s",
        "--shutdown-grace",
        "3s",
        // No proxy unless the test asks for one: the test process's own HTTPS_PROXY & co.
        // (flags win over the environment; empty means none).
        "--egress-proxy=",
        "--https-proxy=",
        "--http-proxy=",
        "--no-proxy=",
    ];
    args.extend_from_slice(extra);
    EngineCli::parse_from(args)
        .run
        .into_config(db.url.clone())
        .expect("valid test config")
}
