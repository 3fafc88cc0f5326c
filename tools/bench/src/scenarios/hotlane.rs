//! Scenario 8, one hot lane: every event on one resource key to one endpoint whose receiver
//! answers in 1 ms. Per-resource order lets only one of them be in flight at a time, so the
//! rate is one over the lane's round trip (answer → recorded → next delivery sent), whatever
//! the machine's capacity.

use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::producers::Workload;
use crate::receiver::Behaviour;
use crate::report::{ScenarioReport, fmt_int};
use crate::run::endpoints::{EVERY_TYPE, endpoint};
use crate::run::{RunSpec, check_run, measure};

/// What the receiver takes to answer.
const ANSWER: Duration = Duration::from_millis(1);

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let events = ctx.smoke_or(300, ctx.opts.hotlane_events) as usize;
    let mut r = ScenarioReport::new(
        "hotlane",
        &format!(
            "8. one hot lane: {} events on one resource key, one endpoint answering in {} ms",
            fmt_int(events as f64),
            ANSWER.as_millis()
        ),
    );
    let db = ctx.cluster.fresh_db("hotlane", 1).await?;
    let w = Arc::new(Workload::uniform(events, 1, ctx.opts.payload_bytes));
    let mut specs = vec![endpoint(
        "hot",
        EVERY_TYPE,
        0,
        Behaviour::Slow(ANSWER),
        true,
    )];
    let x = measure(
        ctx,
        &db,
        &mut specs,
        RunSpec::saturating(ctx, "hotlane", events, w),
    )
    .await?;
    db.cleanup().await;
    r.target(
        "deliveries/s of the one lane (middle 80 %)",
        fmt_int(x.deliveries_per_second),
        "≥ 300",
        Some(x.deliveries_per_second >= 300.0),
    );
    r.row(
        "round trip per delivery (1 / rate)",
        format!(
            "{:.2} ms",
            1000.0 / x.deliveries_per_second.max(f64::MIN_POSITIVE)
        ),
    );
    r.row(
        "order violations / duplicates / lost",
        format!(
            "{} / {} / {}",
            x.receiver.order_violations, x.receiver.duplicates, x.lost
        ),
    );
    check_run(&mut r, &x);
    r.detail("run", &x);
    Ok(r)
}
