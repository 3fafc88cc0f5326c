//! Is every repeated 2xx explained by a crash nearby?
//!
//! SPEC §4: duplicates only around a crash. A repeated 2xx is "explained" when a replica
//! kill, a SIGTERM or a PostgreSQL restart happened between shortly before the first 2xx
//! (the request timeout: the attempt may have been running) and the repeat. Reported, not
//! judged.

use std::time::Duration;

use super::Endpoint;
use super::received::Received;
use crate::clock::at;
use crate::faults::{Fault, FaultKind};

pub struct Duplicates {
    /// 2xx answers beyond the first, per endpoint and webhook-id.
    pub total: usize,
    /// The repeated ones with no fault around them, described.
    pub unexplained: Vec<String>,
}

/// `crashes`: the replica and PostgreSQL faults (not the receivers' bad phases).
pub fn duplicates(received: &Received, crashes: &[Fault], endpoints: &[Endpoint]) -> Duplicates {
    let total = received
        .seen
        .iter()
        .flat_map(|m| m.values())
        .map(|s| s.ok.saturating_sub(1) as usize)
        .sum();
    let mut unexplained = Vec::new();
    for (m, endpoint) in received.seen.iter().zip(endpoints) {
        for (id, s) in m {
            if s.ok < 2 {
                continue;
            }
            let mut t = s.ok_times.clone();
            t.sort_unstable();
            let (first, last) = (t[0], t[t.len() - 1]);
            if !explained(first, last, crashes) {
                unexplained.push(format!(
                    "{id} at {}: 2xx at {} and {}",
                    endpoint.name,
                    at(first),
                    at(last)
                ));
            }
        }
    }
    Duplicates { total, unexplained }
}

/// A crash from a second before the `first` 2xx to a second after the `last` one. (A live
/// upgrade's migration is no crash: a duplicate next to it stays unexplained.)
fn explained(first: Duration, last: Duration, crashes: &[Fault]) -> bool {
    crashes.iter().any(|f| {
        !matches!(f.kind, FaultKind::Migrate { .. })
            && f.at + Duration::from_secs(1) >= first
            && f.at <= last + Duration::from_secs(1)
    })
}

#[cfg(test)]
mod tests {
    use super::duplicates;
    use crate::check::fixture::{endpoints, kill, request};
    use crate::check::received::received;

    #[test]
    fn a_repeat_is_explained_only_by_a_crash_around_it() {
        let logs = vec![vec![
            // a: 2xx at 10 s and 12 s; b: at 30 s and 31 s; c: once.
            request(1, "a", None, 10.0),
            request(3, "a", None, 12.0),
            request(5, "b", None, 31.0),
            request(7, "b", None, 30.0),
            request(9, "c", None, 11.0),
        ]];
        let r = received(&logs);
        // A kill at 9.5 s (within the second before a's first 2xx).
        let d = duplicates(&r, &[kill(9.5, &[])], &endpoints(&[true]));
        assert_eq!(d.total, 2);
        assert_eq!(d.unexplained, ["b at rx1: 2xx at +30.0s and +31.0s"]);
        // A crash long before explains nothing; one between or just after them does.
        let d = duplicates(&r, &[kill(5.0, &[])], &endpoints(&[true]));
        assert_eq!(d.unexplained.len(), 2);
        let d = duplicates(&r, &[kill(11.0, &[]), kill(31.9, &[])], &endpoints(&[true]));
        assert!(d.unexplained.is_empty(), "{:?}", d.unexplained);
    }
}
