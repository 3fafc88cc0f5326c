//! Waiting for a condition that no channel announces (a row in the database, a file), with a
//! deadline, so a test fails with a message instead of hanging; and a free port.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_until`] looks again.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// Polls `f` every 20 ms until it returns true; panics mentioning `what` after `deadline`.
pub async fn wait_until<F, Fut>(deadline: Duration, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !poll_until(deadline, f).await {
        panic!("timed out after {deadline:?} waiting for {what}");
    }
}

/// Polls `f` every 20 ms until it returns true (true) or `deadline` passes (false).
pub async fn poll_until<F, Fut>(deadline: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Accepts connections on `listener` and serves each in its own task, which ends with the
/// returned task (aborting it aborts them all): the loop of the test kit's small servers.
pub fn serve_each<F, Fut>(
    listener: tokio::net::TcpListener,
    serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve(stream));
                    }
                    // E.g. out of file descriptors: try again in a moment.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
            }
        }
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `OUTBOXD_LISTEN`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
