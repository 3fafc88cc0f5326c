//! Scenario 2, the machine's floor: the database's and the receiver's ceilings, combined
//! ([`crate::floor`] measures them).

use crate::ctx::Ctx;
use crate::floor::{FloorResult, measure_floor};
use crate::report::{ScenarioReport, fmt_int};

/// The report, and the floor for steady to compare with.
pub async fn scenario(ctx: &Ctx) -> anyhow::Result<(ScenarioReport, FloorResult)> {
    let f = measure_floor(ctx).await?;
    let mut r = ScenarioReport::new(
        "floor",
        &format!(
            "2. the machine's floor: minimal SQL per delivery ({} connections, fan-out 2.5) and the receiver's ceiling ({})",
            ctx.opts.floor_workers, f.http.tool
        ),
    );
    r.row(
        "database floor, publishing included (deliveries/s)",
        rounds_text(&f),
    );
    if let Some(d) = &f.db_at_size {
        r.row(
            format!(
                "database floor at the run's size, publishing included ({} events, middle 80 %)",
                fmt_int(f.events_at_size as f64)
            ),
            format!(
                "{} deliveries/s, postgres CPU {} per 1000, {:.2} rows per delivery",
                fmt_int(d.deliveries_per_second),
                d.postgres_cpu_ms_per_1000
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms")),
                d.rows_per_delivery
            ),
        );
    }
    if let Some(d) = &f.db_delivery_only {
        r.row(
            "database floor, delivery SQL only (deliveries/s)",
            fmt_int(d.deliveries_per_second),
        );
    }
    if let Some(ms) = f.db.postgres_cpu_ms_per_1000 {
        r.row(
            "postgres CPU per 1000 deliveries (publishing included)",
            format!("{ms:.0} ms"),
        );
    }
    r.row(
        "WAL / rows per delivery (publishing included)",
        format!(
            "{:.0} B / {:.2}",
            f.db.wal_bytes_per_delivery, f.db.rows_per_delivery
        ),
    );
    r.row(
        format!(
            "HTTP floor: receiver requests/s ({}, {} connections)",
            f.http.tool, f.http.connections
        ),
        fmt_int(f.http.requests_per_second),
    );
    let (lo, hi) = f.combined_range();
    r.row(
        "combined floor 1/(1/db + 1/http) (deliveries/s)",
        if f.db_rounds.len() > 1 {
            format!(
                "{} (rounds' range {}–{})",
                fmt_int(f.combined),
                fmt_int(lo),
                fmt_int(hi)
            )
        } else {
            fmt_int(f.combined)
        },
    );
    if let Some(at_size) = f.combined_at_size() {
        r.row(
            "combined floor at the run's size (deliveries/s)",
            fmt_int(at_size),
        );
    }
    if f.http.bad_signatures > 0 || f.http.errors > 0 {
        r.fail(format!(
            "HTTP floor: {} bad signatures, {} errors",
            f.http.bad_signatures, f.http.errors
        ));
    }
    r.detail("floor", &f);
    Ok((r, f))
}

/// The median round, and every round in the order measured when there were several.
fn rounds_text(f: &FloorResult) -> String {
    if f.db_rounds.len() < 2 {
        return fmt_int(f.db.deliveries_per_second);
    }
    let rounds: Vec<String> = f.db_rounds.iter().map(|&r| fmt_int(r)).collect();
    format!(
        "{} (median of {} rounds: {})",
        fmt_int(f.db.deliveries_per_second),
        rounds.len(),
        rounds.join(", ")
    )
}
