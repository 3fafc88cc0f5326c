//! Scenario 7, the routing cost of content filters (issue 13): N subscriptions (10, 1 000,
//! 100 000), one endpoint each, subscribed to one event type of its own; the same events routed
//! once with no filters and once with one filter per subscription (`$.amount > 0`, true for
//! every event, so both runs create the same deliveries). Routing time per event is read from
//! the database: the span of `routed_at` (the routing transactions' start) over the run's
//! events, divided by their number. The events are published before the sidecar starts, so
//! routing runs flat out; the deliveries go to an address the SSRF guard refuses (dead at the
//! first attempt, the same work in both runs). Each figure is the best of three alternating
//! runs, and the span runs from the first routing transaction's start to the last one's, so
//! it leaves out one batch (of 20 at the default `OUTBOXD_ROUTE_BATCH`) in both runs alike.
//!
//! The runs of one level share a database, so each run routes on top of the ones before it.
//! They alternate in the order plain, filtered, filtered, plain, plain, filtered (each pair
//! reversed from the one before), so neither kind always comes first: with plain always first,
//! the best plain run was the one on the smallest tables, and the ratio at 10 subscriptions,
//! where a filter costs next to nothing, read 1.23–1.31× in two `all` runs.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::ctx::Ctx;
use crate::report::{ScenarioReport, fmt_int};
use crate::sidecar;

/// Subscription counts measured (`--max-endpoints` caps them; the first always runs).
const LEVELS: [i64; 3] = [10, 1_000, 100_000];

/// Runs of each kind per level (alternating); each figure is the best of them.
const REPEATS: usize = 3;

/// The filter every subscription gets in the filtered run.
const FILTER: &str = "$.amount > 0";

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events: i64 = ctx.smoke_or(500, ctx.opts.filter_events.clamp(1, i64::MAX as u64) as i64);
    let levels: Vec<i64> = if ctx.smoke {
        vec![10, 100]
    } else {
        LEVELS
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, n)| i == 0 || n as u64 <= ctx.opts.max_endpoints)
            .map(|(_, n)| n)
            .collect()
    };
    let mut r = ScenarioReport::new(
        "filters",
        &format!(
            "7. routing cost of content filters: {events} events, one subscription matches each, \
             no filters vs one filter per subscription ({FILTER:?}), at {levels:?} subscriptions"
        ),
    );
    r.section("subscriptions: routing µs per event without filters | with filters | ratio");
    let mut results = Vec::new();
    for &n in &levels {
        let db = ctx.cluster.fresh_db(&format!("filters_{n}"), 1).await?;
        setup(&db.client, n).await?;
        // Alternating runs, the best of each: the other load on the machine comes and goes.
        let (mut plain, mut filtered) = (f64::INFINITY, f64::INFINITY);
        for pair in 0..ctx.smoke_or(1, REPEATS) {
            for filter in pair_order(pair) {
                let us = route(ctx, &db, n, events, filter).await?;
                let best = if filter.is_some() {
                    &mut filtered
                } else {
                    &mut plain
                };
                *best = best.min(us);
            }
        }
        db.cleanup().await;
        let ratio = filtered / plain;
        r.row(
            format!("{} subscriptions", fmt_int(n as f64)),
            format!("{plain:.1} | {filtered:.1} | {ratio:.2}×"),
        );
        results.push(serde_json::json!({
            "subscriptions": n, "events": events,
            "us_per_event_plain": plain, "us_per_event_filtered": filtered, "ratio": ratio,
        }));
        if n == *levels.last().unwrap_or(&n) {
            r.target(
                format!("ratio at {} subscriptions", fmt_int(n as f64)),
                format!("{ratio:.2}×"),
                "≤ 1.2×",
                Some(ratio <= 1.2),
            );
        }
    }
    r.detail("levels", &results);
    Ok(r)
}

/// The filters of pair `pair`'s two runs: plain first in even pairs, filtered first in odd
/// ones.
fn pair_order(pair: usize) -> [Option<&'static str>; 2] {
    if pair.is_multiple_of(2) {
        [None, Some(FILTER)]
    } else {
        [Some(FILTER), None]
    }
}

/// `n` endpoints at an address the guard refuses, each with one subscription to its own type.
async fn setup(c: &tokio_postgres::Client, n: i64) -> anyhow::Result<()> {
    c.execute(
        "INSERT INTO outbox.endpoints (url, secrets)
         SELECT 'http://10.255.255.1/ep/' || g, ARRAY[outbox.new_secret()]
           FROM generate_series(1, $1::bigint) g",
        &[&n],
    )
    .await
    .context("endpoints")?;
    c.execute(
        "INSERT INTO outbox.subscriptions (endpoint_id, event_types)
         SELECT e.id, ARRAY['t' || e.id] FROM outbox.endpoints e",
        &[],
    )
    .await
    .context("subscriptions")?;
    Ok(())
}

/// Publishes `events` events (types spread over the `n` subscriptions), sets every
/// subscription's filter, routes them with a fresh sidecar and returns µs per event.
async fn route(
    ctx: &Ctx,
    db: &crate::pg::BenchDb,
    n: i64,
    events: i64,
    filter: Option<&str>,
) -> anyhow::Result<f64> {
    let c = &db.client;
    c.execute("UPDATE outbox.subscriptions SET filter = $1", &[&filter])
        .await?;
    let first: i64 = c
        .query_one("SELECT coalesce(max(id), 0) FROM outbox.events", &[])
        .await?
        .get(0);
    c.execute(
        "SELECT outbox.publish('t' || (SELECT min(id) + (g % $2::bigint) FROM outbox.endpoints),
                               jsonb_build_object('amount', g, 'currency', 'EUR'))
           FROM generate_series(1, $1::bigint) g",
        &[&events, &n],
    )
    .await
    .context("publishing")?;
    let label = format!(
        "filters-{n}-{}",
        if filter.is_some() { "on" } else { "off" }
    );
    let mut env = ctx.sidecar_env(&label);
    env.push(("OUTBOXD_RETRY_SCHEDULE".into(), "1h".into()));
    let side = sidecar::start(&ctx.outboxd, &db.url, &env, ctx.log_path(&label)).await?;
    let t0 = Instant::now();
    loop {
        let unrouted: i64 = c
            .query_one(
                "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL",
                &[],
            )
            .await?
            .get(0);
        if unrouted == 0 {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < ctx.run_timeout(),
            "{unrouted} events not routed after {:?}",
            ctx.run_timeout()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sidecar::stop(side, 0.0).await;
    let span: f64 = c
        .query_one(
            "SELECT extract(epoch FROM max(routed_at) - min(routed_at))::float8
               FROM outbox.events WHERE id > $1",
            &[&first],
        )
        .await?
        .get(0);
    let deliveries: i64 = c
        .query_one(
            "SELECT count(*) FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
              WHERE e.id > $1",
            &[&first],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        deliveries == events,
        "{label}: {deliveries} deliveries for {events} events (every filter is true)"
    );
    Ok(span * 1e6 / events as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_kind_of_run_always_comes_first() {
        let order: Vec<bool> = (0..REPEATS)
            .flat_map(pair_order)
            .map(|f| f.is_some())
            .collect();
        assert_eq!(order, [false, true, true, false, false, true]);
    }
}
