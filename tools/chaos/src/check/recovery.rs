//! How long did each fault take to recover from?
//!
//! Per fault: the time to the next 2xx at all (receiver faults: at that receiver, from the end
//! of the bad phase), and for replica and PostgreSQL faults the time until the first event
//! committed after the fault was delivered. For SIGKILLs also the lease takeover: the time
//! until every delivery the killed replicas held was answered 2xx again. Reported, not judged.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use super::committed::Committed;
use super::received::Received;
use super::{Endpoint, opt_secs};
use crate::clock::{at, secs};
use crate::faults::{Fault, FaultKind};
use crate::receiver::Phase;

/// After one fault: (next 2xx, first event committed after it delivered).
pub type Times = (Option<Duration>, Option<Duration>);

pub struct Recovery {
    /// Every fault: replica and PostgreSQL faults and the receivers' bad phases.
    pub faults: usize,
    /// The replica and PostgreSQL faults.
    pub infra_faults: usize,
    /// [`Times`] of every fault, by [`FaultKind::label`].
    pub groups: BTreeMap<String, Vec<Times>>,
    /// SIGKILLs: from the kill to the next 2xx of each delivery the killed replicas held.
    pub takeover: Vec<Duration>,
    /// Deliveries killed replicas held that were never answered 2xx after the kill.
    pub takeover_missing: usize,
    /// One line per replica or PostgreSQL fault, in time order.
    pub fault_lines: Vec<String>,
}

/// The replica and PostgreSQL faults plus each receiver's bad phases, in time order.
pub fn with_receiver_faults(infra: &[Fault], phases: &[Vec<Phase>]) -> Vec<Fault> {
    let mut faults = infra.to_vec();
    for (rx, phases) in phases.iter().enumerate() {
        for p in phases {
            if p.mode.is_fault() {
                faults.push(Fault {
                    kind: FaultKind::Receiver {
                        receiver: rx,
                        mode: p.mode,
                    },
                    at: p.start,
                    end: p.end,
                    leased: Vec::new(),
                    detail: String::new(),
                });
            }
        }
    }
    faults.sort_by_key(|f| f.at);
    faults
}

/// `faults` in time order ([`with_receiver_faults`]).
pub fn recovery(
    faults: &[Fault],
    received: &Received,
    committed: &Committed,
    endpoints: &[Endpoint],
) -> Recovery {
    let mut commits: Vec<(Duration, &str)> = committed
        .events
        .iter()
        .map(|(&id, e)| (committed.ended_at(e), id))
        .collect();
    commits.sort_unstable();
    let mut r = Recovery {
        faults: faults.len(),
        infra_faults: 0,
        groups: BTreeMap::new(),
        takeover: Vec::new(),
        takeover_missing: 0,
        fault_lines: Vec::new(),
    };
    for f in faults {
        let (next, fresh) = match &f.kind {
            FaultKind::Receiver { receiver, .. } => {
                (next_after(&received.rx_ok_times[*receiver], f.end), None)
            }
            _ => (
                next_after(&received.ok_times, f.at),
                first_delivered_after(&commits, &received.first_ok, f.at),
            ),
        };
        r.groups
            .entry(f.kind.label())
            .or_default()
            .push((next, fresh));
        if matches!(f.kind, FaultKind::Receiver { .. }) {
            continue;
        }
        r.infra_faults += 1;
        let mut line = format!(
            "  {:>7} {:<32} next 2xx {}",
            at(f.at),
            describe(f, endpoints),
            opt_secs(next),
        );
        if let Some(fr) = fresh {
            let _ = write!(line, ", first new event delivered {}", secs(fr));
        }
        if let FaultKind::Kill { .. } = f.kind {
            let worst = r.take_over(f, received, endpoints);
            if f.leased.is_empty() {
                line.push_str(", held no delivery");
            } else {
                let _ = write!(
                    line,
                    ", its {} held deliveries re-delivered within {}",
                    f.leased.len(),
                    opt_secs(worst)
                );
            }
        }
        if !f.detail.is_empty() {
            let _ = write!(line, " [{}]", f.detail);
        }
        r.fault_lines.push(line);
    }
    r
}

impl Recovery {
    /// Records when each delivery the killed replicas held was answered 2xx after the kill;
    /// returns the slowest.
    fn take_over(
        &mut self,
        kill: &Fault,
        received: &Received,
        endpoints: &[Endpoint],
    ) -> Option<Duration> {
        let mut worst: Option<Duration> = None;
        for (ep, id) in &kill.leased {
            // The inbound worker's deliveries: checked by `inbound`, not timed here.
            let Some(rx) = endpoints.iter().position(|e| e.id == *ep) else {
                continue;
            };
            let t = received.seen[rx]
                .get(id.as_str())
                .and_then(|s| s.ok_times.iter().filter(|t| **t >= kill.at).min().copied());
            match t {
                Some(t) => {
                    let d = t - kill.at;
                    self.takeover.push(d);
                    worst = Some(worst.map_or(d, |w| w.max(d)));
                }
                None => self.takeover_missing += 1,
            }
        }
        worst
    }
}

/// From `t` to the first of the sorted `times` at or after it.
fn next_after(times: &[Duration], t: Duration) -> Option<Duration> {
    let i = times.partition_point(|x| *x < t);
    times.get(i).map(|x| *x - t)
}

/// From `t` to the first 2xx of any event committed at or after `t` (`commits` sorted).
fn first_delivered_after(
    commits: &[(Duration, &str)],
    first_ok: &HashMap<&str, Duration>,
    t: Duration,
) -> Option<Duration> {
    let start = commits.partition_point(|c| c.0 < t);
    commits[start..]
        .iter()
        .filter_map(|(_, id)| first_ok.get(id))
        .min()
        .map(|x| x.saturating_sub(t))
}

/// What happened, for the report's list of faults.
fn describe(f: &Fault, endpoints: &[Endpoint]) -> String {
    match &f.kind {
        FaultKind::Kill { replicas } => format!("SIGKILL {}", replicas.join("+")),
        FaultKind::Term {
            replica,
            code,
            shutdown_time,
            upgrade,
            ..
        } => format!(
            "SIGTERM {replica}: exit {} in {}{}",
            code.map_or("?".into(), |c| c.to_string()),
            shutdown_time.map_or("?".into(), secs),
            if *upgrade { ", new binary" } else { "" }
        ),
        FaultKind::Migrate { from, to } => format!(
            "migrate {} (live), {}",
            crate::upgrade::versions(*from, *to),
            secs(f.end - f.at)
        ),
        FaultKind::PgRestart { immediate } => format!(
            "PostgreSQL {} restart, down {}",
            if *immediate { "immediate" } else { "fast" },
            secs(f.end - f.at)
        ),
        FaultKind::Receiver { receiver, mode } => format!(
            "{} {} for {}",
            endpoints[*receiver].name,
            mode.name(),
            secs(f.end - f.at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{recovery, with_receiver_faults};
    use crate::check::committed::committed;
    use crate::check::fixture::{endpoints, kill, ledger, request, stored};
    use crate::check::received::received;
    use crate::producer::TxOutcome::Committed;
    use crate::receiver::{Mode, Phase};

    #[test]
    fn receiver_faults_are_the_bad_phases_merged_in_time_order() {
        let s = Duration::from_secs;
        let phase = |mode, start, end| Phase {
            mode,
            start: s(start),
            end: s(end),
        };
        let faults = with_receiver_faults(
            &[kill(5.0, &[])],
            &[
                vec![phase(Mode::Ok, 0, 2), phase(Mode::Error, 2, 4)],
                vec![phase(Mode::Mixed, 0, 6), phase(Mode::Hang, 6, 8)],
            ],
        );
        let labels: Vec<(String, Duration)> =
            faults.iter().map(|f| (f.kind.label(), f.at)).collect();
        assert_eq!(
            labels,
            [
                ("receiver 500".into(), s(2)),
                ("SIGKILL".into(), s(5)),
                ("receiver hang".into(), s(6)),
            ]
        );
    }

    #[test]
    fn a_kill_recovers_at_the_next_2xx_and_when_its_held_deliveries_come_back() {
        // ("a" committed at 0 s, "b" at 6 s (after the kill); the kill at 5 s held "a" at
        // endpoint 1 and "c" at endpoint 2.
        let mut l = ledger(&[(Committed, &[("a", None)]), (Committed, &[("b", None)])]);
        l.txs[1].ended_at = Duration::from_secs(6);
        let c = committed(&l, &stored(&["a", "b"]), &[]);
        let logs = vec![
            vec![request(1, "a", None, 4.0), request(3, "a", None, 7.5)],
            vec![request(1, "b", None, 9.0)],
        ];
        let rcv = received(&logs);
        let faults = [kill(5.0, &[(1, "a"), (2, "c")])];
        let r = recovery(&faults, &rcv, &c, &endpoints(&[true, true]));
        let s = Duration::from_secs_f64;
        assert_eq!((r.faults, r.infra_faults), (1, 1));
        assert_eq!(r.groups["SIGKILL"], [(Some(s(2.5)), Some(s(4.0)))]);
        assert_eq!((r.takeover.clone(), r.takeover_missing), (vec![s(2.5)], 1));
        assert_eq!(
            r.fault_lines,
            [
                "    +5.0s SIGKILL r1                       next 2xx 2.50s, first new event \
              delivered 4.0s, its 2 held deliveries re-delivered within 2.50s"
            ]
        );
    }
}
