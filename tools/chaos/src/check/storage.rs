//! Is the database settled after the drain?
//!
//! Nothing may be stuck after the drain and one more lease period (unrouted events, `pending`
//! or `delivering` deliveries), and every `outbox.lanes.pending` must equal the number of its
//! unfinished deliveries. Also the figures only the database has: attempts by outcome, and late
//! commits (events routed after an event with a larger id, which an `id > last_seen`
//! watermark would have skipped).

use super::{Failures, Rule};
use crate::drain::Drain;

pub struct Storage {
    /// Unrouted events, pending and delivering deliveries after the drain and one more lease.
    pub stuck: usize,
    /// Lanes whose pending counter disagrees with their deliveries.
    pub lanes_off: i64,
    /// `outbox.attempts` by error kind (or `ok <status>`), most first.
    pub attempts: Vec<(String, i64)>,
    /// Events routed after an event with a larger id.
    pub overtaken: i64,
    pub failures: Failures,
}

impl Storage {
    pub fn attempts_total(&self) -> i64 {
        self.attempts.iter().map(|a| a.1).sum()
    }
}

pub async fn storage(db: &tokio_postgres::Client, drain: &Drain) -> anyhow::Result<Storage> {
    let lanes_off: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox.lanes l
              WHERE l.pending <> (SELECT count(*) FROM outbox.deliveries d
                                   WHERE d.endpoint_id = l.endpoint_id AND d.lane_key = l.lane_key
                                     AND d.state IN ('pending', 'delivering'))",
            &[],
        )
        .await?
        .get(0);
    let attempts: Vec<(String, i64)> = db
        .query(
            "SELECT coalesce(error_kind, 'ok ' || coalesce(status_code::text, '')), count(*)
               FROM outbox.attempts GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let overtaken: i64 = db
        .query_one(
            "SELECT count(*) FROM (
                SELECT routed_at, min(routed_at) OVER (ORDER BY id DESC
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS first_later
                  FROM outbox.events) x
              WHERE x.first_later < x.routed_at",
            &[],
        )
        .await?
        .get(0);
    Ok(settled(drain, lanes_off, attempts, overtaken))
}

/// Judges what [`storage`] read.
fn settled(drain: &Drain, lanes_off: i64, attempts: Vec<(String, i64)>, overtaken: i64) -> Storage {
    let mut s = Storage {
        stuck: (drain.unrouted + drain.pending + drain.delivering) as usize,
        lanes_off,
        attempts,
        overtaken,
        failures: Failures::default(),
    };
    s.failures.when(
        s.stuck > 0,
        Rule::Stuck,
        format!("stuck after the drain: {}", s.stuck),
    );
    s.failures.when(
        s.lanes_off > 0,
        Rule::LanesOff,
        format!(
            "lanes whose pending counter disagrees with their deliveries: {}",
            s.lanes_off
        ),
    );
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::settled;
    use crate::check::Rule;
    use crate::drain::Drain;

    fn drain(unrouted: i64, pending: i64, delivering: i64) -> Drain {
        Drain {
            drained: true,
            took: Duration::from_secs(1),
            left_at_deadline: (0, 0, 0),
            unrouted,
            pending,
            delivering,
            expired_leases: 0,
        }
    }

    #[test]
    fn anything_left_after_the_lease_or_a_lane_counter_off_fails() {
        let attempts = vec![("ok 200".into(), 5), ("http_5xx".into(), 2)];
        let s = settled(&drain(0, 0, 0), 0, attempts, 3);
        assert_eq!((s.stuck, s.attempts_total()), (0, 7));
        assert!(s.failures.rules().is_empty());

        let s = settled(&drain(1, 2, 3), 1, Vec::new(), 0);
        assert_eq!(s.stuck, 6);
        assert_eq!(s.failures.rules(), [Rule::Stuck, Rule::LanesOff]);
    }
}
