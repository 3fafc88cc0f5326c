//! Waiting for a condition that no channel announces (a row in the database, a file), with a
//! deadline, so a test fails with a message instead of hanging; and a free port.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `f` every 20 ms until it returns true; panics mentioning `what` after `deadline`.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return;
        }
        if Instant::now() >= end {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `OUTBOXD_LISTEN`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
