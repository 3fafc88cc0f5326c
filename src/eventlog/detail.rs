//! One event, or one delivery, in full: the payload (pretty-printed when small), the extra
//! headers, every delivery with its attempts, and where a held delivery stands in its lane.

use crate::db::Conn;

use super::{Attempt, Delivery, Error, EventDetail, Scope, col};
use crate::sql::eventlog as q;

/// Payloads stored in at most this many bytes are shown; larger ones are downloaded.
pub const PREVIEW_MAX_STORED_BYTES: i32 = 256 * 1024;
/// Attempts shown per delivery (the newest).
pub const MAX_ATTEMPTS: i64 = 100;

fn no_event(event_id: &str) -> Error {
    Error::NotFound(format!(
        "no event with event_id {:?} (or it was removed by retention)",
        super::search::shorten(event_id)
    ))
}

/// An event by its `event_id`, with its deliveries and their attempts.
pub(crate) async fn event(db: &Conn, scope: &Scope, event_id: &str) -> Result<EventDetail, Error> {
    let row = db
        .query_opt(
            q::EVENT_GET,
            &[&event_id, &scope.tenant(), &PREVIEW_MAX_STORED_BYTES],
        )
        .await?
        .ok_or_else(|| no_event(event_id))?;
    let id: i64 = col(&row, "id")?;
    let deliveries = deliveries(db, scope, Some(id), None).await?;
    Ok(EventDetail {
        id,
        event_id: col(&row, "event_id")?,
        event_type: col(&row, "event_type")?,
        resource_key: col(&row, "resource_key")?,
        tenant_id: col(&row, "tenant_id")?,
        headers: col(&row, "headers")?,
        created_at: col(&row, "created_at")?,
        routed_at: col(&row, "routed_at")?,
        published: col(&row, "published")?,
        payload_stored_bytes: col(&row, "payload_stored_bytes")?,
        payload_pretty: col(&row, "payload_pretty")?,
        deliveries,
    })
}

/// One delivery with its attempts.
pub(crate) async fn delivery(db: &Conn, scope: &Scope, id: i64) -> Result<Delivery, Error> {
    deliveries(db, scope, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(format!("delivery {id} does not exist")))
}

/// The deliveries of an event, or one delivery, with their latest attempts.
async fn deliveries(
    db: &Conn,
    scope: &Scope,
    event_pk: Option<i64>,
    id: Option<i64>,
) -> Result<Vec<Delivery>, Error> {
    let rows = db
        .query(q::DELIVERIES_DETAIL, &[&event_pk, &id, &scope.tenant()])
        .await?;
    let mut out = rows
        .iter()
        .map(Delivery::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = out.iter().map(|d| d.id).collect();
    for row in db
        .query(q::DELIVERY_ATTEMPTS, &[&ids, &MAX_ATTEMPTS])
        .await?
    {
        let delivery_id: i64 = col(&row, "delivery_id")?;
        if let Some(d) = out.iter_mut().find(|d| d.id == delivery_id) {
            d.attempts.push(Attempt::from_row(&row)?);
        }
    }
    Ok(out)
}

/// The payload as sent (JSON text), for a download.
pub(crate) async fn payload(db: &Conn, scope: &Scope, event_id: &str) -> Result<String, Error> {
    let row = db
        .query_opt(q::EVENT_PAYLOAD, &[&event_id, &scope.tenant()])
        .await?
        .ok_or_else(|| no_event(event_id))?;
    col(&row, "payload")
}
