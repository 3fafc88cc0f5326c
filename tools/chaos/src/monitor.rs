//! Samples the database twice a second during the run: how long expired leases wait for a
//! rescue, and how old the oldest visible unrouted event gets (routing lag). Informational
//! figures; samples are skipped while PostgreSQL is down.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock;

#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub taken: u32,
    pub failed: u32,
    /// Longest time a delivery sat in `delivering` past its lease, and when.
    pub max_expired_lease: Duration,
    pub max_expired_lease_at: Duration,
    /// Oldest visible unrouted event, and when.
    pub max_routing_lag: Duration,
    pub max_routing_lag_at: Duration,
}

/// The sampler, running until [`Monitor::stop`].
pub struct Monitor {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Samples>,
}

impl Monitor {
    pub fn start(url: String) -> Monitor {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(url, stop.clone()));
        Monitor { stop, task }
    }

    /// Stops sampling; what it saw.
    pub async fn stop(self) -> Samples {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn run(url: String, stop: CancellationToken) -> Samples {
    let mut s = Samples::default();
    let mut client: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return s,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = outboxd::connect(&url).await.ok();
        }
        let Some(c) = &client else {
            s.failed += 1;
            continue;
        };
        let row = c
            .query_one(
                "SELECT coalesce(extract(epoch FROM now() - (
                            SELECT min(lease_until) FROM outbox.deliveries
                             WHERE state = 'delivering' AND lease_until < now())), 0)::float8,
                        coalesce(extract(epoch FROM now() - (
                            SELECT created_at FROM outbox.events
                             WHERE routed_at IS NULL ORDER BY id LIMIT 1)), 0)::float8",
                &[],
            )
            .await;
        match row {
            Ok(row) => {
                s.taken += 1;
                let now = clock::now();
                let expired = Duration::from_secs_f64(row.get::<_, f64>(0).max(0.0));
                let lag = Duration::from_secs_f64(row.get::<_, f64>(1).max(0.0));
                if expired > s.max_expired_lease {
                    s.max_expired_lease = expired;
                    s.max_expired_lease_at = now;
                }
                if lag > s.max_routing_lag {
                    s.max_routing_lag = lag;
                    s.max_routing_lag_at = now;
                }
            }
            Err(_) => {
                s.failed += 1;
                client = None;
            }
        }
    }
}
