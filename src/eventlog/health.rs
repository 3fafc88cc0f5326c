//! Endpoints at a glance (backlog, dead, the last hour's success rate, last error, circuit)
//! and the event types seen.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Row;

use crate::db::Conn;
use utoipa::ToSchema;

use super::{CatalogEntry, EndpointHealth, Error, EventType, Scope, col};
use crate::circuit::CircuitState;
use crate::replica::Replica;
use crate::sql::eventlog as q;

/// Backlog counts stop here, so the page costs the same whatever the backlog.
pub const COUNT_CAP: i64 = 10_000;

/// The event types seen in scope, alphabetically, at most `limit`.
pub(crate) async fn event_types(
    db: &Conn,
    scope: &Scope,
    limit: i64,
) -> Result<Vec<EventType>, Error> {
    db.query(q::EVENT_TYPES, &[&scope.tenant(), &limit])
        .await?
        .iter()
        .map(|row| {
            Ok(EventType {
                event_type: col(row, "event_type")?,
                events: col(row, "events")?,
                first_seen: col(row, "first_seen")?,
                last_seen: col(row, "last_seen")?,
            })
        })
        .collect()
}

/// The catalog's registered event types (`names`: only those; `None`: any), alphabetically,
/// at most `limit`. The catalog is global: the same for every tenant.
pub(crate) async fn catalog_entries(
    db: &Conn,
    names: Option<&[String]>,
    limit: i64,
) -> Result<Vec<CatalogEntry>, Error> {
    db.query(q::CATALOG_ENTRIES, &[&names, &limit])
        .await?
        .iter()
        .map(|row| {
            let example: Option<serde_json::Value> = col(row, "example")?;
            Ok(CatalogEntry {
                event_type: col(row, "event_type")?,
                description: col(row, "description")?,
                example: example
                    .map(|e| serde_json::to_string_pretty(&e).unwrap_or_else(|_| e.to_string())),
                deprecated: col(row, "deprecated")?,
            })
        })
        .collect()
}

/// This replica's circuit breakers that are not closed.
fn circuits(replica: &Replica) -> HashMap<i64, CircuitState> {
    replica.breakers().not_closed(Instant::now()).collect()
}

fn circuit_name(state: Option<&CircuitState>) -> &'static str {
    match state {
        None | Some(CircuitState::Closed) => "closed",
        Some(CircuitState::Open) => "open",
        Some(CircuitState::HalfOpen) => "half_open",
    }
}

fn from_row(row: &Row, circuits: &HashMap<i64, CircuitState>) -> Result<EndpointHealth, Error> {
    let id: i64 = col(row, "id")?;
    let attempts: i64 = col(row, "attempts_last_hour")?;
    let failures: i64 = col(row, "failures_last_hour")?;
    Ok(EndpointHealth {
        id,
        url: crate::mask::masked_url(&col::<String>(row, "url")?),
        tenant_id: col(row, "tenant_id")?,
        all_tenants: col(row, "all_tenants")?,
        enabled: col(row, "enabled")?,
        disabled_reason: col(row, "disabled_reason")?,
        description: col(row, "description")?,
        max_in_flight: col(row, "max_in_flight")?,
        in_flight: col(row, "in_flight")?,
        pending: col(row, "pending")?,
        dead: col(row, "dead")?,
        oldest_pending_at: col(row, "oldest_pending_at")?,
        attempts_last_hour: attempts,
        failures_last_hour: failures,
        success_rate_last_hour: (attempts > 0)
            .then(|| (attempts - failures) as f64 / attempts as f64),
        last_error_kind: col(row, "last_error_kind")?,
        last_error_message: col(row, "last_error_message")?,
        last_error_at: col(row, "last_error_at")?,
        circuit: circuit_name(circuits.get(&id)).to_owned(),
        event_types: col(row, "event_types")?,
        client_certificate: col(row, "client_certificate")?,
    })
}

/// A page of endpoints in id order (after `after`), with their health; the id to continue
/// after when there are more.
pub(crate) async fn endpoints(
    db: &Conn,
    replica: &Replica,
    scope: &Scope,
    after: i64,
    limit: i64,
) -> Result<(Vec<EndpointHealth>, Option<i64>), Error> {
    let rows = db
        .query(
            q::ENDPOINT_HEALTH,
            &[
                &after,
                &(limit + 1),
                &scope.tenant(),
                &None::<i64>,
                &COUNT_CAP,
            ],
        )
        .await?;
    let circuits = circuits(replica);
    let mut out = rows
        .iter()
        .map(|r| from_row(r, &circuits))
        .collect::<Result<Vec<_>, _>>()?;
    let more = out.len() as i64 > limit;
    out.truncate(limit as usize);
    let next = if more { out.last().map(|e| e.id) } else { None };
    Ok((out, next))
}

/// One endpoint in scope with its health.
pub(crate) async fn endpoint(
    db: &Conn,
    replica: &Replica,
    scope: &Scope,
    id: i64,
) -> Result<EndpointHealth, Error> {
    let row = db
        .query_opt(
            q::ENDPOINT_HEALTH,
            &[&0i64, &1i64, &scope.tenant(), &Some(id), &COUNT_CAP],
        )
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {id} does not exist")))?;
    from_row(&row, &circuits(replica))
}

/// A subscription of an endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Subscription {
    pub id: i64,
    pub event_types: Vec<String>,
    pub active: bool,
}

/// The subscriptions of an endpoint in scope.
pub(crate) async fn subscriptions(
    db: &Conn,
    scope: &Scope,
    endpoint_id: i64,
) -> Result<Vec<Subscription>, Error> {
    db.query(q::ENDPOINT_SUBSCRIPTIONS, &[&endpoint_id, &scope.tenant()])
        .await?
        .iter()
        .map(|row| {
            Ok(Subscription {
                id: col(row, "id")?,
                event_types: col(row, "event_types")?,
                active: col(row, "active")?,
            })
        })
        .collect()
}
