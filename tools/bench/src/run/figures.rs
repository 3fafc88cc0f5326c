//! The figures of a run, computed from what it recorded: throughput over the middle 80 % of
//! arrivals, commit → receive latency, CPU used, deliveries lost, counts per endpoint.

use std::sync::atomic::Ordering;

use crate::ctx::Ctx;
use crate::machine;
use crate::receiver::{Arrival, CommitLog, EndpointSpec, RecvState};

/// CPU clocks read around a run, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct CpuClocks {
    /// PostgreSQL's processes (embedded cluster only).
    postgres: Option<f64>,
    /// This process: producers and receiver.
    bench: f64,
    /// Every process on the machine.
    machine: f64,
}

impl CpuClocks {
    pub fn read(ctx: &Ctx) -> CpuClocks {
        CpuClocks {
            postgres: ctx.cluster.postgres_cpu_seconds(),
            bench: testkit::process::self_cpu_seconds(),
            machine: machine::machine_busy_seconds(),
        }
    }
}

/// CPU seconds used between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsed {
    pub postgres: Option<f64>,
    pub bench: f64,
    pub machine: f64,
}

impl CpuUsed {
    /// The machine's CPU not used by PostgreSQL, the bench or the sidecar (`sidecar` seconds):
    /// other work on the machine. Known only with PostgreSQL's figure; never below 0.
    pub fn other(&self, sidecar: f64) -> Option<f64> {
        self.postgres
            .map(|pg| (self.machine - pg - self.bench - sidecar).max(0.0))
    }
}

pub fn cpu_used(before: CpuClocks, after: CpuClocks) -> CpuUsed {
    CpuUsed {
        postgres: before.postgres.zip(after.postgres).map(|(a, b)| b - a),
        bench: after.bench - before.bench,
        machine: after.machine - before.machine,
    }
}

/// Commit → receive latency of each arrival, in ns (0 when its commit time is unknown).
pub fn latencies_ns(arrivals: &[Arrival], commits: &CommitLog) -> Vec<u64> {
    arrivals
        .iter()
        .map(|a| {
            commits
                .get(a.n as usize)
                .map_or(0, |c| a.t_ns.saturating_sub(c))
        })
        .collect()
}

/// Deliveries that never arrived: for each committed event of `events` and each endpoint of
/// `specs` it was `due` at, unless `seen(endpoint index, event)`. Returns the count and up to
/// 10 samples, as `describe` writes them.
pub fn lost_deliveries(
    events: impl IntoIterator<Item = usize>,
    specs: &[EndpointSpec],
    committed: impl Fn(usize) -> bool,
    due: impl Fn(usize, &EndpointSpec) -> bool,
    seen: impl Fn(usize, usize) -> bool,
    describe: impl Fn(usize, &EndpointSpec) -> String,
) -> (u64, Vec<String>) {
    let mut lost = 0u64;
    let mut samples = Vec::new();
    for n in events.into_iter().filter(|&n| committed(n)) {
        for (i, s) in specs.iter().enumerate() {
            if due(n, s) && !seen(i, n) {
                lost += 1;
                if samples.len() < 10 {
                    samples.push(describe(n, s));
                }
            }
        }
    }
    (lost, samples)
}

/// Per endpoint: (name, requests, unique deliveries).
pub fn per_endpoint(specs: &[EndpointSpec], state: &RecvState) -> Vec<(String, u64, u64)> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let c = state.counters(i);
            (
                s.name.clone(),
                c.map_or(0, |c| c.requests.load(Ordering::Relaxed)),
                c.map_or(0, |c| c.unique.load(Ordering::Relaxed)),
            )
        })
        .collect()
}

/// (sustained over the middle 80 % of arrivals, overall, seconds from start to last arrival).
pub fn rates(arrivals: &[Arrival], t_start: u64, t_end: u64) -> (f64, f64, f64) {
    let n = arrivals.len();
    if n == 0 {
        return (0.0, 0.0, (t_end - t_start) as f64 / 1e9);
    }
    let last = arrivals[n - 1].t_ns;
    let secs = (last.saturating_sub(t_start)) as f64 / 1e9;
    let overall = n as f64 / secs.max(1e-9);
    if n < 50 {
        return (overall, overall, secs);
    }
    let (i10, i90) = (n / 10, n * 9 / 10);
    let span = (arrivals[i90].t_ns - arrivals[i10].t_ns) as f64 / 1e9;
    ((i90 - i10) as f64 / span.max(1e-9), overall, secs)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::receiver::Behaviour;
    use crate::run::endpoints::endpoint;

    fn arrival(t_ns: u64, n: u32) -> Arrival {
        Arrival {
            t_ns,
            n,
            key: 0,
            ep: 0,
        }
    }

    #[test]
    fn sustained_rate_leaves_out_the_first_and_last_tenth_of_arrivals() {
        // 100 arrivals: 10 slow ones (100 ms apart), 80 at 1 ms, 10 slow ones again.
        let mut t = 0;
        let arrivals: Vec<Arrival> = (0..100)
            .map(|i| {
                t += if (10..=90).contains(&i) {
                    1_000_000
                } else {
                    100_000_000
                };
                arrival(t, i)
            })
            .collect();
        let (sustained, overall, secs) = rates(&arrivals, 0, t + 5);
        assert!((sustained - 1000.0).abs() < 1e-6, "{sustained}");
        assert!((secs - t as f64 / 1e9).abs() < 1e-12);
        assert!((overall - 100.0 / secs).abs() < 1e-9);
    }

    #[test]
    fn few_arrivals_give_the_overall_rate_as_sustained() {
        let arrivals: Vec<Arrival> = (1..=10).map(|i| arrival(i * 100_000_000, 0)).collect();
        let (sustained, overall, secs) = rates(&arrivals, 0, 2_000_000_000);
        assert_eq!(secs, 1.0);
        assert_eq!((sustained, overall), (10.0, 10.0));
    }

    #[test]
    fn no_arrivals_give_zero_rates_over_the_whole_run() {
        assert_eq!(rates(&[], 1_000, 2_000_001_000), (0.0, 0.0, 2.0));
    }

    #[test]
    fn other_cpu_is_the_machine_minus_postgres_bench_and_sidecar_never_negative() {
        let before = CpuClocks {
            postgres: Some(10.0),
            bench: 1.0,
            machine: 100.0,
        };
        let after = CpuClocks {
            postgres: Some(14.0),
            bench: 3.0,
            machine: 110.0,
        };
        let used = cpu_used(before, after);
        assert_eq!(
            used,
            CpuUsed {
                postgres: Some(4.0),
                bench: 2.0,
                machine: 10.0
            }
        );
        assert_eq!(used.other(3.0), Some(1.0));
        assert_eq!(used.other(5.0), Some(0.0));
        let no_pg = CpuClocks {
            postgres: None,
            ..before
        };
        assert_eq!(cpu_used(no_pg, after).other(0.0), None);
    }

    #[test]
    fn latency_runs_from_commit_to_arrival_and_is_zero_without_a_commit() {
        let commits = CommitLog::new(Instant::now(), 3);
        commits.set(0, 1_000);
        commits.set(1, 5_000);
        let got = latencies_ns(
            &[arrival(4_000, 0), arrival(6_000, 1), arrival(7_000, 2)],
            &commits,
        );
        assert_eq!(got, vec![3_000, 1_000, 0]);
    }

    #[test]
    fn lost_counts_due_unseen_deliveries_of_committed_events_and_keeps_ten_samples() {
        let specs = vec![
            endpoint("a", 1, 0, Behaviour::Ok, true),
            endpoint("b", 1, 0, Behaviour::Ok, false),
        ];
        // Events 0..30; event 5 was never committed; endpoint a saw the even ones; b is not due.
        let (lost, samples) = lost_deliveries(
            0..30,
            &specs,
            |n| n != 5,
            |_, s| s.tracked,
            |i, n| i == 0 && n % 2 == 0,
            |n, s| format!("{n}@{}", s.name),
        );
        assert_eq!(lost, 14);
        assert_eq!(samples.len(), 10);
        assert_eq!(samples[0], "1@a");
        assert_eq!(samples[2], "7@a");
    }
}
