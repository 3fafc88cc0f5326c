//! Scenario 3, cost growth: time per delivery as pending rows and endpoints grow, with the
//! claim's EXPLAIN at each level. Each dimension has its own database, filled level by level;
//! at each level the same number of fresh events (unique keys, fan-out 2.5) is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::pg::BenchDb;
use crate::producers::Workload;
use crate::receiver::EndpointSpec;
use crate::report::{Latency, ScenarioReport, fmt_int, fmt_ms};
use crate::run::db::{DbTiming, db_timing, max_ids};
use crate::run::endpoints::standard_endpoints;
use crate::run::{RunResult, RunSpec, check_run, measure};

/// Pending-row levels, and endpoint levels; smaller ones when `--max-rows` /
/// `--max-endpoints` say so (the first level always runs).
const ROW_LEVELS: [u64; 3] = [10_000, 1_000_000, 10_000_000];
const ENDPOINT_LEVELS: [u64; 3] = [10, 1_000, 100_000];
/// Where the extra endpoints go: each of its own tenant, subscribed to everything, or all of
/// the bench's tenant, subscribed to a type nobody publishes.
const LAYOUTS: [&str; 2] = ["tenants", "one-tenant"];

#[derive(Debug, Serialize)]
struct GrowthLevel {
    dimension: String,
    level: u64,
    deliveries_per_second: f64,
    us_per_delivery: f64,
    latency: Latency,
    db: DbTiming,
    claim_explain_ms: f64,
    claim_explain: String,
    claim_params: String,
    sidecar_peak_rss_mb: f64,
    sidecar_cpu_ms_per_1000: f64,
    /// PostgreSQL + sidecar CPU per delivery (µs): the cost, independent of other load.
    cpu_us_per_delivery: Option<f64>,
    /// Other processes' CPU during the run (cores).
    other_cores: Option<f64>,
    setup_seconds: f64,
    run: RunResult,
}

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = ctx.smoke_or(400, ctx.opts.growth_events) as usize;
    let (row_levels, ep_levels) = if ctx.smoke {
        (vec![1_000, 10_000], vec![10, 200])
    } else {
        (
            levels_up_to(&ROW_LEVELS, ctx.opts.max_rows),
            levels_up_to(&ENDPOINT_LEVELS, ctx.opts.max_endpoints),
        )
    };
    let mut r = ScenarioReport::new(
        "growth",
        &format!(
            "3. cost growth: {} fresh events (unique keys, fan-out 2.5) on top of {:?} pending rows and {:?} endpoints",
            fmt_int(events as f64),
            row_levels,
            ep_levels
        ),
    );
    let mut levels = pending_rows(ctx, &row_levels, events).await?;
    for layout in LAYOUTS {
        levels.extend(endpoints(ctx, layout, &ep_levels, events).await?);
    }
    level_table(&mut r, &levels);
    flat_cost(&mut r, &levels);
    for l in &levels {
        check_run(&mut r, &l.run);
    }
    r.detail("levels", &levels);
    Ok(r)
}

/// The levels of `all` up to `max`, and always the first.
fn levels_up_to(all: &[u64], max: u64) -> Vec<u64> {
    let max = max.max(all[0]);
    all.iter().copied().filter(|&l| l <= max).collect()
}

/// Pending rows: one database, filled level by level with parked deliveries (due in ten
/// years, so nothing claims them), one measured run per level.
async fn pending_rows(
    ctx: &Ctx,
    row_levels: &[u64],
    events: usize,
) -> anyhow::Result<Vec<GrowthLevel>> {
    let mut db = ctx
        .cluster
        .fresh_db("growth_rows", fresh_keys(events))
        .await?;
    let mut specs = standard_endpoints(10, 0);
    let mut have = 0u64;
    let mut levels = Vec::new();
    for (li, &level) in row_levels.iter().enumerate() {
        let t0 = Instant::now();
        // Register endpoints (at a dummy URL) before the first preload, so rows can point
        // at them; measure() repoints them at the receiver.
        if li == 0 {
            register_unreachable(ctx, &db, &mut specs).await?;
        }
        let ids: Vec<i64> = specs.iter().filter_map(|s| s.db_id).collect();
        while have < level {
            let n = (level - have).min(200_000) as i64;
            db.client
                .execute(
                    "WITH ev AS ( \
                       INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, routed_at) \
                       SELECT 'order.created', 'parked:' || g, 'acme', \
                              jsonb_build_object('parked', g, 'pad', repeat('x', 150)), now() \
                         FROM generate_series(1, $1::bigint) g \
                       RETURNING id) \
                     INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key, next_attempt_at, attempt_count, last_status) \
                     SELECT ev.id, ($2::bigint[])[1 + (ev.id % cardinality($2::bigint[]))], NULL, \
                            now() + interval '3650 days', 1, 503 \
                       FROM ev",
                    &[&n, &ids],
                )
                .await
                .context("preloading pending rows")?;
            have += n as u64;
        }
        for t in ["outbox.events", "outbox.deliveries"] {
            db.client
                .batch_execute(&format!("VACUUM ANALYZE {t}"))
                .await?;
        }
        let at = Level::reached("rows", level, t0);
        levels.push(growth_level(ctx, &mut db, &mut specs, at, events).await?);
    }
    db.cleanup().await;
    Ok(levels)
}

/// Endpoints in one of the [`LAYOUTS`]: one database, endpoints added level by level, one
/// measured run per level.
async fn endpoints(
    ctx: &Ctx,
    layout: &str,
    ep_levels: &[u64],
    events: usize,
) -> anyhow::Result<Vec<GrowthLevel>> {
    let mut db = ctx
        .cluster
        .fresh_db(&format!("growth_endpoints_{layout}"), fresh_keys(events))
        .await?;
    let mut specs = standard_endpoints(10, 0);
    register_unreachable(ctx, &db, &mut specs).await?;
    let mut have = 10u64;
    let mut levels = Vec::new();
    for &level in ep_levels {
        let t0 = Instant::now();
        while have < level {
            let to = level.min(have + 5_000);
            let sql = if layout == "tenants" {
                // Another tenant each, subscribed to everything (receives nothing here).
                "SELECT count(outbox.add_endpoint('http://127.0.0.1:9/noise/' || g, '{*}', 'tenant-' || g, NULL)) \
                   FROM generate_series($1::bigint, $2::bigint) g"
            } else {
                // Same tenant, subscribed to an event type nobody publishes.
                "SELECT count(outbox.add_endpoint('http://127.0.0.1:9/noise/' || g, ARRAY['noise.' || g], 'acme', NULL)) \
                   FROM generate_series($1::bigint, $2::bigint) g"
            };
            db.client
                .query_one(sql, &[&((have + 1) as i64), &(to as i64)])
                .await
                .context("adding endpoints")?;
            have = to;
        }
        let at = Level::reached(&format!("endpoints ({layout})"), level, t0);
        levels.push(growth_level(ctx, &mut db, &mut specs, at, events).await?);
    }
    db.cleanup().await;
    Ok(levels)
}

/// Keys of a level's fresh events: one each.
fn fresh_keys(events: usize) -> u32 {
    (events as u32).max(1)
}

/// Registers the bench's endpoints at an address nothing listens on, so that rows can point at
/// them before a run; [`measure`] repoints them at its receiver. The claim's EXPLAIN finds
/// them by their `/ep/` path.
async fn register_unreachable(
    ctx: &Ctx,
    db: &BenchDb,
    specs: &mut [EndpointSpec],
) -> anyhow::Result<()> {
    db.register_endpoints(
        specs,
        &["acme".to_owned()],
        |i| format!("http://127.0.0.1:9/ep/{i}"),
        ctx.opts.max_in_flight,
    )
    .await
}

/// A level of a dimension, reached after `setup_seconds` of filling.
struct Level {
    dimension: String,
    level: u64,
    setup_seconds: f64,
}

impl Level {
    fn reached(dimension: &str, level: u64, since: Instant) -> Level {
        Level {
            dimension: dimension.to_owned(),
            level,
            setup_seconds: since.elapsed().as_secs_f64(),
        }
    }

    /// The run's label: growth-<dimension as a slug>-<level>.
    fn label(&self) -> String {
        format!(
            "growth-{}-{}",
            self.dimension
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                .replace("--", "-")
                .trim_end_matches('-'),
            self.level
        )
    }
}

/// Measures `events` fresh events at one level: the claim's EXPLAIN first, then the run, then
/// the database's route and claim delays of the run's own rows.
async fn growth_level(
    ctx: &Ctx,
    db: &mut BenchDb,
    specs: &mut [EndpointSpec],
    at: Level,
    events: usize,
) -> anyhow::Result<GrowthLevel> {
    let (plan, exec_ms, params) = explain_claim(db).await?;
    let (ev0, del0) = max_ids(db).await?;
    // Unique keys: no lane waits, so claim delay is the claim path alone.
    let keys = fresh_keys(events);
    let mut w = Workload::uniform(events, keys, ctx.opts.payload_bytes);
    for (n, k) in w.key_of.iter_mut().enumerate() {
        *k = n as u32 % keys;
    }
    let x = measure(
        ctx,
        db,
        specs,
        RunSpec {
            idle_before: Duration::from_millis(300),
            ..RunSpec::saturating(ctx, &at.label(), events, Arc::new(w))
        },
    )
    .await?;
    let timing = db_timing(db, ev0, del0).await?;
    let Level {
        dimension,
        level,
        setup_seconds,
    } = at;
    println!(
        "  growth {dimension} {level}: {:.0} deliveries/s, claim EXPLAIN {exec_ms:.2} ms, setup {setup_seconds:.1} s",
        x.deliveries_per_second
    );
    Ok(GrowthLevel {
        dimension,
        level,
        deliveries_per_second: x.deliveries_per_second,
        us_per_delivery: 1e6 / x.deliveries_per_second.max(1e-9),
        latency: x.latency,
        db: timing,
        claim_explain_ms: exec_ms,
        claim_explain: plan,
        claim_params: params,
        sidecar_peak_rss_mb: x.sidecar.peak_rss_mb,
        sidecar_cpu_ms_per_1000: x.cpu_ms_per_1000(),
        cpu_us_per_delivery: x
            .postgres_cpu_seconds
            .map(|pg| (pg + x.sidecar.cpu_seconds) * 1e6 / x.deliveries_received.max(1) as f64),
        other_cores: x.other_cpu_seconds.map(|o| o / x.wall_seconds.max(1e-9)),
        setup_seconds,
        run: x,
    })
}

/// One row per level, a section per dimension.
fn level_table(r: &mut ScenarioReport, levels: &[GrowthLevel]) {
    let mut cur_dim = String::new();
    for l in levels {
        if l.dimension != cur_dim {
            cur_dim = l.dimension.clone();
            r.section(format!(
                "{}: deliveries/s | µs per delivery | CPU µs per delivery (pg+sidecar) | e2e p50/p99 ms | route p50/p99 ms | claim p50/p99 ms | claim EXPLAIN ms | RSS MB | other load (cores)",
                l.dimension
            ));
        }
        r.row(
            format!("{} {}", fmt_int(l.level as f64), l.dimension),
            format!(
                "{} | {:.0} | {} | {}/{} | {}/{} | {}/{} | {:.2} | {:.0} | {}",
                fmt_int(l.deliveries_per_second),
                l.us_per_delivery,
                l.cpu_us_per_delivery
                    .map_or("-".to_owned(), |c| format!("{c:.0}")),
                fmt_ms(l.latency.p50_ms),
                fmt_ms(l.latency.p99_ms),
                fmt_ms(l.db.route_p50_ms),
                fmt_ms(l.db.route_p99_ms),
                fmt_ms(l.db.claim_p50_ms),
                fmt_ms(l.db.claim_p99_ms),
                l.claim_explain_ms,
                l.sidecar_peak_rss_mb,
                l.other_cores.map_or("-".to_owned(), |c| format!("{c:.2}"))
            ),
        );
    }
}

/// How time per delivery grew across a dimension's levels.
#[derive(Debug, PartialEq)]
struct Growth {
    first_level: u64,
    last_level: u64,
    /// Time per delivery, last level / first.
    time: f64,
    /// CPU per delivery, last level / first (with PostgreSQL's figure only).
    cpu: Option<f64>,
}

/// The growth of `dimension` from its first level to its last; none with fewer than two.
fn growth_of(levels: &[GrowthLevel], dimension: &str) -> Option<Growth> {
    let v: Vec<&GrowthLevel> = levels.iter().filter(|l| l.dimension == dimension).collect();
    let (first, last) = (v.first()?, v.last()?);
    if v.len() < 2 {
        return None;
    }
    Some(Growth {
        first_level: first.level,
        last_level: last.level,
        time: last.us_per_delivery / first.us_per_delivery.max(1e-9),
        cpu: last
            .cpu_us_per_delivery
            .zip(first.cpu_us_per_delivery)
            .map(|(b, a)| b / a.max(1e-9)),
    })
}

/// The targets: time per delivery stays flat (≤ 1.2×) across each dimension.
fn flat_cost(r: &mut ScenarioReport, levels: &[GrowthLevel]) {
    r.section("flat cost");
    if let Some(g) = growth_of(levels, "rows") {
        let target = if g.last_level >= 10_000_000 {
            "≤ 1.2× (10M vs 10k)"
        } else {
            "≤ 1.2× (10M level not run: --max-rows 10000000)"
        };
        g.target(r, "pending rows", target);
    }
    for layout in LAYOUTS {
        if let Some(g) = growth_of(levels, &format!("endpoints ({layout})")) {
            g.target(r, &format!("endpoints ({layout})"), "≤ 1.2× (flat)");
        }
    }
}

impl Growth {
    /// The row "time per delivery, <last> vs <first> <what>", met at 1.2× or less.
    fn target(&self, r: &mut ScenarioReport, what: &str, target: &str) {
        let cpu = self
            .cpu
            .map_or(String::new(), |c| format!(" (CPU per delivery {c:.2}×)"));
        r.target(
            format!(
                "time per delivery, {} vs {} {what}",
                fmt_int(self.last_level as f64),
                fmt_int(self.first_level as f64)
            ),
            format!("{:.2}×{cpu}", self.time),
            target,
            Some(self.time <= 1.2),
        );
    }
}

/// EXPLAIN (ANALYZE, BUFFERS) of the engine's claim query with 1000 due deliveries (100 new
/// events × 10 endpoints) added in a transaction that is rolled back. Returns (plan text, execution ms, parameters used).
pub async fn explain_claim(db: &mut BenchDb) -> anyhow::Result<(String, f64, String)> {
    use tokio_postgres::types::{ToSql, Type};
    let tx = db.client.transaction().await?;
    // 100 fresh events × the 10 bench endpoints = 1000 due deliveries, rolled back below.
    tx.execute(
        "WITH ev AS ( \
           INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, routed_at) \
           SELECT 'order.created', 'explain:' || g, 'acme', jsonb_build_object('n', g), now() \
             FROM generate_series(1, 100) g RETURNING id) \
         INSERT INTO outbox.deliveries (event_pk, endpoint_id, lane_key) \
         SELECT ev.id, ep.id, NULL FROM ev \
          CROSS JOIN (SELECT id FROM outbox.endpoints WHERE url LIKE '%/ep/%' ORDER BY id LIMIT 10) ep",
        &[],
    )
    .await?;
    // The claim exactly as the engine runs it: the product's own query file.
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS) {}",
        include_str!("../../../../sql/engine/claim.sql")
    );
    let stmt = tx.prepare(&sql).await?;
    let types: Vec<Type> = stmt.params().to_vec();
    let known = [
        Type::INT8_ARRAY,
        Type::INT4_ARRAY,
        Type::INT8_ARRAY,
        Type::INT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::INT8,
    ];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let described = if types == known {
        params.push(Box::new(Vec::<i64>::new()));
        params.push(Box::new(Vec::<i32>::new()));
        params.push(Box::new(Vec::<i64>::new()));
        params.push(Box::new(256i64));
        params.push(Box::new(45.0f64));
        params.push(Box::new("bench-explain".to_owned()));
        params.push(Box::new(0i64));
        "busy={}, counts={}, excluded={}, limit=256, lease=45s, replica='bench-explain', cursor=0"
            .to_owned()
    } else {
        // The claim's parameters changed: fill them by type.
        let mut d = Vec::new();
        for t in &types {
            let (b, s): (Box<dyn ToSql + Sync + Send>, String) = match *t {
                Type::INT8_ARRAY => (Box::new(Vec::<i64>::new()), "{}".into()),
                Type::INT4_ARRAY => (Box::new(Vec::<i32>::new()), "{}".into()),
                Type::TEXT_ARRAY => (Box::new(Vec::<String>::new()), "{}".into()),
                Type::INT8 => (Box::new(256i64), "256".into()),
                Type::INT4 => (Box::new(0i32), "0".into()),
                Type::FLOAT8 => (Box::new(45.0f64), "45".into()),
                Type::TEXT => (
                    Box::new("bench-explain".to_owned()),
                    "'bench-explain'".into(),
                ),
                Type::BOOL => (Box::new(false), "false".into()),
                ref other => anyhow::bail!("claim parameter of unexpected type {other}"),
            };
            params.push(b);
            d.push(s);
        }
        format!("by type: {}", d.join(", "))
    };
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = tx.query(&stmt, &refs).await?;
    tx.rollback().await?;
    let text: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let exec_ms = text
        .iter()
        .find_map(|l| l.trim().strip_prefix("Execution Time: "))
        .and_then(|s| s.trim_end_matches(" ms").parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Ok((text.join("\n"), exec_ms, described))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(dimension: &str, level: u64, us: f64, cpu: Option<f64>) -> GrowthLevel {
        GrowthLevel {
            dimension: dimension.into(),
            level,
            deliveries_per_second: 1e6 / us,
            us_per_delivery: us,
            latency: Latency::default(),
            db: DbTiming::default(),
            claim_explain_ms: 0.0,
            claim_explain: String::new(),
            claim_params: String::new(),
            sidecar_peak_rss_mb: 0.0,
            sidecar_cpu_ms_per_1000: 0.0,
            cpu_us_per_delivery: cpu,
            other_cores: None,
            setup_seconds: 0.0,
            run: RunResult::default(),
        }
    }

    #[test]
    fn levels_stop_at_the_maximum_but_the_first_always_runs() {
        assert_eq!(levels_up_to(&ROW_LEVELS, 1_000_000), [10_000, 1_000_000]);
        assert_eq!(levels_up_to(&ROW_LEVELS, 5), [10_000]);
        assert_eq!(levels_up_to(&ENDPOINT_LEVELS, u64::MAX), ENDPOINT_LEVELS);
    }

    #[test]
    fn a_level_label_is_a_slug_of_its_dimension() {
        let at = |d: &str| Level {
            dimension: d.into(),
            level: 1000,
            setup_seconds: 0.0,
        };
        assert_eq!(at("rows").label(), "growth-rows-1000");
        assert_eq!(
            at("endpoints (one-tenant)").label(),
            "growth-endpoints-one-tenant-1000"
        );
    }

    #[test]
    fn growth_compares_a_dimensions_last_level_with_its_first() {
        let levels = [
            level("rows", 10, 100.0, Some(50.0)),
            level("endpoints (tenants)", 10, 10.0, None),
            level("rows", 100, 110.0, Some(60.0)),
            level("rows", 1000, 150.0, Some(75.0)),
        ];
        assert_eq!(
            growth_of(&levels, "rows"),
            Some(Growth {
                first_level: 10,
                last_level: 1000,
                time: 1.5,
                cpu: Some(1.5),
            })
        );
        assert_eq!(growth_of(&levels, "endpoints (tenants)"), None);
        assert_eq!(growth_of(&levels, "nothing"), None);
    }
}
