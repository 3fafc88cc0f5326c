//! Scenario 6, hot keys: 10 keys vs 10 000 keys, per key, per lane (endpoint × key), and the gap
//! between a lane's deliveries (the ordered round trip).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::ctx::Ctx;
use crate::producers::Workload;
use crate::receiver::Arrival;
use crate::report::{Latency, ScenarioReport, fmt_int};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunResult, RunSpec, check_run, measure};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = ctx.smoke_or(600, ctx.opts.hotkey_events) as usize;
    let mut r = ScenarioReport::new(
        "hotkeys",
        &format!(
            "6. hot keys: {} events on 10 keys vs 10 000 keys, 10 endpoints (fan-out 2.5)",
            fmt_int(events as f64)
        ),
    );
    let mut out = Vec::new();
    for keys in [10u32, 10_000] {
        let x = keys_run(ctx, keys, events).await?;
        let lanes = Lanes::from_arrivals(&x.arrivals);
        out.push(json!({
            "keys": keys,
            "deliveries_per_second": x.deliveries_per_second,
            "per_key_avg": lanes.per_key_avg(),
            "per_key_min": lanes.per_key_min(),
            "per_lane_avg": lanes.per_lane_avg(),
            "lane_gap": lanes.gap,
            "lanes": lanes.lanes,
            "run": &x,
        }));
        keys_rows(&mut r, keys, &x, &lanes);
    }
    r.detail("runs", out);
    Ok(r)
}

/// `events` on `keys` keys, standard layout, saturating.
async fn keys_run(ctx: &Ctx, keys: u32, events: usize) -> anyhow::Result<RunResult> {
    let label = format!("hotkeys-{keys}");
    let db = ctx.cluster.fresh_db(&label, keys).await?;
    let w = Arc::new(Workload::uniform(events, keys, ctx.opts.payload_bytes));
    let mut specs = standard_endpoints(10, 0);
    let x = measure(
        ctx,
        &db,
        &mut specs,
        RunSpec::saturating(ctx, &label, events, w),
    )
    .await?;
    db.cleanup().await;
    Ok(x)
}

/// One run's section.
fn keys_rows(r: &mut ScenarioReport, keys: u32, x: &RunResult, lanes: &Lanes) {
    r.section(format!("{keys} keys ({} lanes)", lanes.lanes));
    r.row("deliveries/s total", fmt_int(x.deliveries_per_second));
    let per_key_deliveries = x.deliveries_received as f64 / keys as f64;
    if per_key_deliveries >= 20.0 {
        r.row(
            "per key deliveries/s (avg / min)",
            format!("{:.0} / {:.0}", lanes.per_key_avg(), lanes.per_key_min()),
        );
    } else {
        r.row(
            "per key deliveries/s",
            format!("n/a ({per_key_deliveries:.1} deliveries per key)"),
        );
    }
    r.row(
        "per lane (endpoint × key) deliveries/s avg",
        format!("{:.1}", lanes.per_lane_avg()),
    );
    r.row(
        "gap between consecutive deliveries of a lane",
        lanes.gap.short(),
    );
    r.row("commit → receive latency", x.latency.short());
    check_run(r, x);
}

/// Delivery rates per key and per lane (endpoint × key), and the gaps between a lane's
/// consecutive deliveries.
#[derive(Debug)]
struct Lanes {
    /// Deliveries per second of each key: (deliveries − 1) / (last − first arrival); a key
    /// with fewer than two deliveries, or all at one instant, has none.
    key_rates: Vec<f64>,
    /// The same per lane.
    lane_rates: Vec<f64>,
    /// Lanes that received anything.
    lanes: usize,
    /// Time between consecutive deliveries of one lane: the ordered round trip.
    gap: Latency,
}

impl Lanes {
    /// From arrivals sorted by time.
    fn from_arrivals(arrivals: &[Arrival]) -> Lanes {
        // (deliveries, first arrival, last arrival).
        let mut per_key: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        let mut per_lane: BTreeMap<(u16, u32), (u64, u64, u64)> = BTreeMap::new();
        let mut gaps = Vec::new();
        for a in arrivals {
            let e = per_key.entry(a.key).or_insert((0, a.t_ns, a.t_ns));
            e.0 += 1;
            e.2 = a.t_ns;
            let l = per_lane.entry((a.ep, a.key)).or_insert((0, a.t_ns, a.t_ns));
            if l.0 > 0 {
                gaps.push(a.t_ns - l.2);
            }
            l.0 += 1;
            l.2 = a.t_ns;
        }
        let rate = |(n, a, b): &(u64, u64, u64)| {
            if *n < 2 || b <= a {
                None
            } else {
                Some((*n - 1) as f64 / ((b - a) as f64 / 1e9))
            }
        };
        Lanes {
            key_rates: per_key.values().filter_map(rate).collect(),
            lane_rates: per_lane.values().filter_map(rate).collect(),
            lanes: per_lane.len(),
            gap: Latency::from_ns(&mut gaps),
        }
    }

    fn per_key_avg(&self) -> f64 {
        avg(&self.key_rates)
    }

    /// The slowest key's rate (0 when no key has one).
    fn per_key_min(&self) -> f64 {
        if self.key_rates.is_empty() {
            0.0
        } else {
            self.key_rates.iter().copied().fold(f64::INFINITY, f64::min)
        }
    }

    fn per_lane_avg(&self) -> f64 {
        avg(&self.lane_rates)
    }
}

/// The mean (0 of nothing).
fn avg(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(t_ms: u64, ep: u16, key: u32) -> Arrival {
        Arrival {
            t_ns: t_ms * 1_000_000,
            n: 0,
            key,
            ep,
        }
    }

    #[test]
    fn rates_and_gaps_are_per_key_and_per_lane() {
        // Key 1 on two endpoints: lane (0, 1) every 100 ms, lane (1, 1) twice 400 ms apart.
        // Key 2: one delivery only, so no rate.
        let arrivals = [
            arrival(0, 0, 1),
            arrival(0, 1, 1),
            arrival(50, 0, 2),
            arrival(100, 0, 1),
            arrival(200, 0, 1),
            arrival(400, 1, 1),
        ];
        let lanes = Lanes::from_arrivals(&arrivals);
        assert_eq!(lanes.lanes, 3);
        assert_eq!(lanes.key_rates, [4.0 / 0.4]);
        assert_eq!(lanes.lane_rates, [10.0, 2.5]);
        assert_eq!((lanes.per_key_avg(), lanes.per_key_min()), (10.0, 10.0));
        assert_eq!(lanes.per_lane_avg(), 6.25);
        assert_eq!(lanes.gap.count, 3);
        assert_eq!(lanes.gap.max_ms, 400.0);
    }

    #[test]
    fn without_rates_the_minimum_and_average_are_zero() {
        let lanes = Lanes::from_arrivals(&[arrival(0, 0, 1)]);
        assert_eq!((lanes.per_key_avg(), lanes.per_key_min()), (0.0, 0.0));
    }
}
