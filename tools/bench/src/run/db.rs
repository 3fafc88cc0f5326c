//! What the database says about a run: route and claim delays from its timestamps, the
//! newest ids (to time only a run's own rows), and pg_stat_statements' top statements.

use serde::Serialize;

use crate::ctx::Ctx;
use crate::pg::BenchDb;
use crate::report::{ScenarioReport, fmt_ms};

/// DB-side timing of a run's fresh events and deliveries.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DbTiming {
    pub route_p50_ms: f64,
    pub route_p99_ms: f64,
    pub claim_p50_ms: f64,
    pub claim_p99_ms: f64,
}

impl DbTiming {
    /// Route delay p50 / p99, as the reports print it.
    pub fn route_text(&self) -> String {
        p50_p99(self.route_p50_ms, self.route_p99_ms)
    }

    /// Claim delay p50 / p99, as the reports print it.
    pub fn claim_text(&self) -> String {
        p50_p99(self.claim_p50_ms, self.claim_p99_ms)
    }
}

fn p50_p99(p50: f64, p99: f64) -> String {
    format!("{} / {} ms", fmt_ms(p50), fmt_ms(p99))
}

/// [`db_timing_for`] every tenant.
pub async fn db_timing(db: &BenchDb, ev_from: i64, del_from: i64) -> anyhow::Result<DbTiming> {
    db_timing_for(db, ev_from, del_from, None).await
}

/// Route delay (event transaction start → routing transaction start) and claim delay (routing
/// transaction start → first HTTP attempt) of the events after `ev_from` / deliveries after
/// `del_from`, optionally of one tenant.
pub async fn db_timing_for(
    db: &BenchDb,
    ev_from: i64,
    del_from: i64,
    tenant: Option<&str>,
) -> anyhow::Result<DbTiming> {
    let r = db
        .client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.99) WITHIN GROUP (ORDER BY x) \
               FROM (SELECT extract(epoch FROM routed_at - created_at) * 1000 AS x \
                       FROM outbox.events WHERE id > $1 AND routed_at IS NOT NULL \
                        AND ($2::text IS NULL OR tenant_id = $2)) s",
            &[&ev_from, &tenant],
        )
        .await?;
    let c = db
        .client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.99) WITHIN GROUP (ORDER BY x) \
               FROM (SELECT extract(epoch FROM a.started_at - d.created_at) * 1000 AS x \
                       FROM outbox.deliveries d JOIN outbox.attempts a ON a.delivery_id = d.id \
                       JOIN outbox.events e ON e.id = d.event_pk \
                      WHERE d.id > $1 AND a.attempt = 1 \
                        AND ($2::text IS NULL OR e.tenant_id = $2)) s",
            &[&del_from, &tenant],
        )
        .await?;
    Ok(DbTiming {
        route_p50_ms: r.get::<_, Option<f64>>(0).unwrap_or(f64::NAN),
        route_p99_ms: r.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
        claim_p50_ms: c.get::<_, Option<f64>>(0).unwrap_or(f64::NAN),
        claim_p99_ms: c.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
    })
}

pub async fn max_ids(db: &BenchDb) -> anyhow::Result<(i64, i64)> {
    let r = db
        .client
        .query_one(
            "SELECT (SELECT coalesce(max(id), 0) FROM outbox.events), \
                    (SELECT coalesce(max(id), 0) FROM outbox.deliveries)",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

pub async fn top_statements(ctx: &Ctx, db: &BenchDb, r: &mut ScenarioReport, key: &str) {
    if ctx.cluster.info.pg_stat_statements
        && let Ok(top) = db.top_statements(12).await
    {
        r.detail(key, top);
    }
}

pub async fn reset_statements(ctx: &Ctx, db: &BenchDb) {
    if ctx.cluster.info.pg_stat_statements {
        let _ = db
            .client
            .batch_execute("SELECT pg_stat_statements_reset()")
            .await;
    }
}
