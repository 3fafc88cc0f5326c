//! After the faults: wait (bounded) until nothing is left to route or deliver, then one more
//! lease period, and look again: whatever a replica still held must have been rescued.

use std::time::Duration;

use crate::monitor::{Monitor, Samples};
use crate::replicas::ReplicaSet;
use crate::{LEASE, RESPAWN_GAP, clock};

#[derive(Debug, Clone)]
pub struct Drain {
    pub drained: bool,
    pub took: Duration,
    /// (unrouted events, pending, delivering) when the drain ended.
    pub left_at_deadline: (i64, i64, i64),
    /// After one more lease period.
    pub unrouted: i64,
    pub pending: i64,
    pub delivering: i64,
    pub expired_leases: i64,
}

/// Drains for at most `limit`, keeping the replicas up; stops the `monitor` when the backlog
/// is gone (or the time is up), then waits one more lease and counts what is left.
pub async fn drain(
    db: &tokio_postgres::Client,
    replicas: &mut ReplicaSet,
    limit: Duration,
    monitor: Monitor,
) -> anyhow::Result<(Drain, Samples)> {
    let start = clock::now();
    println!(
        "{} draining (at most {})",
        clock::at(start),
        clock::secs(limit)
    );
    let mut drained = false;
    let mut last = (0, 0, 0);
    while clock::now() - start < limit {
        let row = db
            .query_one(
                "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL),
                        (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending'),
                        (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering')",
                &[],
            )
            .await?;
        last = (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
        );
        if last == (0, 0, 0) {
            drained = true;
            break;
        }
        // Replicas must stay up during the drain, too.
        replicas.restart_exited(RESPAWN_GAP)?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = clock::now() - start;
    let samples = monitor.stop().await;
    // Leases of anything a replica still held must be rescued: wait one lease, look again.
    tokio::time::sleep(LEASE + Duration::from_millis(1500)).await;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL),
                    (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending'),
                    (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering'),
                    (SELECT count(*) FROM outbox.deliveries
                      WHERE state = 'delivering' AND lease_until < now() - interval '1 second')",
            &[],
        )
        .await?;
    let drain = Drain {
        drained,
        took,
        left_at_deadline: last,
        unrouted: row.get(0),
        pending: row.get(1),
        delivering: row.get(2),
        expired_leases: row.get(3),
    };
    Ok((drain, samples))
}
