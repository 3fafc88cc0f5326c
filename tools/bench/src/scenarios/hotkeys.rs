//! Scenario 6, hot keys: 10 keys vs 10 000 keys, per key, per lane (endpoint × key), and the gap
//! between a lane's deliveries (the ordered round trip).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::ctx::Ctx;
use crate::producers::Workload;
use crate::report::{Latency, ScenarioReport, fmt_int};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunSpec, check_run, measure};

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = if ctx.smoke {
        600
    } else {
        ctx.opts.hotkey_events
    } as usize;
    let mut r = ScenarioReport::new(
        "hotkeys",
        &format!(
            "6. hot keys: {} events on 10 keys vs 10 000 keys, 10 endpoints (fan-out 2.5)",
            fmt_int(events as f64)
        ),
    );
    let mut out = Vec::new();
    for keys in [10u32, 10_000] {
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
        // Per key and per lane (endpoint × key): deliveries / (last − first arrival).
        let mut per_key: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        let mut per_lane: BTreeMap<(u16, u32), (u64, u64, u64)> = BTreeMap::new();
        for a in &x.arrivals {
            let e = per_key.entry(a.key).or_insert((0, a.t_ns, a.t_ns));
            e.0 += 1;
            e.2 = a.t_ns;
            let l = per_lane.entry((a.ep, a.key)).or_insert((0, a.t_ns, a.t_ns));
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
        let key_rates: Vec<f64> = per_key.values().filter_map(rate).collect();
        let lane_rates: Vec<f64> = per_lane.values().filter_map(rate).collect();
        let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let lane_lat = {
            // Time between consecutive deliveries of one lane: the ordered round trip.
            let mut gaps = Vec::new();
            let mut last: BTreeMap<(u16, u32), u64> = BTreeMap::new();
            for a in &x.arrivals {
                if let Some(prev) = last.insert((a.ep, a.key), a.t_ns) {
                    gaps.push(a.t_ns - prev);
                }
            }
            Latency::from_ns(&mut gaps)
        };
        out.push(json!({
            "keys": keys,
            "deliveries_per_second": x.deliveries_per_second,
            "per_key_avg": avg(&key_rates),
            "per_key_min": if key_rates.is_empty() { 0.0 } else { min(&key_rates) },
            "per_lane_avg": avg(&lane_rates),
            "lane_gap": lane_lat,
            "lanes": per_lane.len(),
            "run": &x,
        }));
        r.section(format!("{keys} keys ({} lanes)", per_lane.len()));
        r.row("deliveries/s total", fmt_int(x.deliveries_per_second));
        let per_key_deliveries = x.deliveries_received as f64 / keys as f64;
        if per_key_deliveries >= 20.0 {
            r.row(
                "per key deliveries/s (avg / min)",
                format!(
                    "{:.0} / {:.0}",
                    avg(&key_rates),
                    if key_rates.is_empty() {
                        0.0
                    } else {
                        min(&key_rates)
                    }
                ),
            );
        } else {
            r.row(
                "per key deliveries/s",
                format!("n/a ({per_key_deliveries:.1} deliveries per key)"),
            );
        }
        r.row(
            "per lane (endpoint × key) deliveries/s avg",
            format!("{:.1}", avg(&lane_rates)),
        );
        r.row(
            "gap between consecutive deliveries of a lane",
            lane_lat.short(),
        );
        r.row("commit → receive latency", x.latency.short());
        check_run(&mut r, &x);
    }
    r.detail("runs", out);
    Ok(r)
}
