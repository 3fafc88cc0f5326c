//! `/metrics`: the process-wide counters of the recorder, then what this replica knows at the
//! moment of the scrape (readiness, schema versions, in-flight work, pool, circuit breakers,
//! its per-endpoint series, the client certificates enabled endpoints name) and, on the
//! holder of the stats lease, the database-wide gauges. See [`crate::metrics`] for the table.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::circuit::CircuitState;
use crate::db::Schema;
use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::names;
use crate::replica::Replica;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(s): State<AppState>) -> Response {
    // The database's schema version is known (and shown) while ready.
    let schema = super::readiness(&s).await.ok();
    crate::metrics::collect_process();
    let mut page = s.prom.render();
    page.push_str(&replica_families(&s.replica, schema, Instant::now()));
    ([(CONTENT_TYPE, TEXT_FORMAT)], page).into_response()
}

fn replica_families(r: &Replica, schema: Option<Schema>, now: Instant) -> String {
    let catalog = r.catalog.get();
    let enabled = catalog.enabled_ids();
    let in_flight = r.capacity().total();
    let not_closed: HashMap<i64, u8> = {
        let mut breakers = r.breakers();
        // Deleted and disabled endpoints keep no breaker (nor series).
        breakers.retain(|id| enabled.binary_search(&id).is_ok());
        breakers
            .not_closed(now)
            .map(|(id, state)| (id, state as u8))
            .collect()
    };
    let mut out = Exposition::default();
    out.single(
        names::READY,
        Kind::Gauge,
        "1 when this replica is ready (what /readyz answers), 0 otherwise.",
        if schema.is_some() { 1.0 } else { 0.0 },
    );
    out.family(
        names::SCHEMA_VERSION,
        Kind::Gauge,
        "The newest migration this binary knows (of=binary) and, while ready, the newest applied \
         to the database (of=database); the database ahead means old replicas run on a newer \
         schema that still supports them: a rollout in progress.",
    );
    out.sample(
        names::SCHEMA_VERSION,
        &[("of", "binary")],
        f64::from(crate::db::latest_migration()),
    );
    if let Some(schema) = schema {
        out.sample(
            names::SCHEMA_VERSION,
            &[("of", "database")],
            f64::from(schema.database_version()),
        );
    }
    out.single(
        names::IN_FLIGHT,
        Kind::Gauge,
        "Deliveries this replica has claimed and not yet recorded (at most OUTBOXD_CONCURRENCY).",
        in_flight as f64,
    );
    let pool = r.pool.status();
    out.family(
        names::POOL_CONNECTIONS,
        Kind::Gauge,
        "This replica's database connections by state.",
    );
    let idle = pool.available;
    let in_use = pool.size.saturating_sub(pool.available);
    out.sample(
        names::POOL_CONNECTIONS,
        &[("state", "in_use")],
        in_use as f64,
    );
    out.sample(names::POOL_CONNECTIONS, &[("state", "idle")], idle as f64);
    out.single(
        names::POOL_MAX,
        Kind::Gauge,
        "Size limit of this replica's database pool (OUTBOXD_DB_POOL_SIZE).",
        pool.max_size as f64,
    );
    out.single(
        names::POOL_WAITING,
        Kind::Gauge,
        "Tasks of this replica waiting for a database connection.",
        pool.waiting as f64,
    );
    let count = |s: CircuitState| not_closed.values().filter(|&&v| v == s as u8).count();
    let (open, half_open) = (count(CircuitState::Open), count(CircuitState::HalfOpen));
    out.family(
        names::ENDPOINT_CIRCUITS,
        Kind::Gauge,
        "Enabled endpoints by the state of this replica's circuit breaker.",
    );
    for (state, n) in [
        ("closed", enabled.len().saturating_sub(open + half_open)),
        ("open", open),
        ("half_open", half_open),
    ] {
        out.sample(names::ENDPOINT_CIRCUITS, &[("state", state)], n as f64);
    }
    let policy = {
        let mut series = r.endpoint_metrics();
        series.refresh(&enabled, &not_closed, now);
        series.render(&mut out, &not_closed);
        series.policy()
    };
    r.stats().render(&mut out, policy, &enabled, now);
    client_certificates(r, &mut out);
    out.into_string()
}

/// One series per client certificate an enabled endpoint names (names come from the
/// configuration, so they are few): whether its files load, and when it expires.
fn client_certificates(r: &Replica, out: &mut Exposition) {
    let catalog = r.catalog.get();
    let certificates = r
        .sender
        .client_certificate_expiry(catalog.client_certificates());
    if certificates.is_empty() {
        return; // no mutual TLS: no families
    }
    out.family(
        names::CLIENT_CERT_USABLE,
        Kind::Gauge,
        "1 when the client certificate's files load (OUTBOXD_CLIENT_CERT_DIR), 0 when its endpoints' attempts fail with kind tls.",
    );
    for (name, expiry) in &certificates {
        let usable = if expiry.is_some() { 1.0 } else { 0.0 };
        out.sample(names::CLIENT_CERT_USABLE, &[("certificate", name)], usable);
    }
    out.family(
        names::CLIENT_CERT_EXPIRY,
        Kind::Gauge,
        "The client certificate's notAfter, in Unix seconds (usable certificates only).",
    );
    for (name, expiry) in &certificates {
        if let Some(t) = expiry {
            out.sample(
                names::CLIENT_CERT_EXPIRY,
                &[("certificate", name)],
                *t as f64,
            );
        }
    }
}
