//! What the admin API returns: resources read from rows, and cursor pages of them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use utoipa::ToSchema;

use super::error::ApiError;
pub use crate::mask::{MASK, masked_headers, masked_url};

/// A column of a row the admin queries return; a mismatch is a bug, answered with a 500.
pub fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, ApiError> {
    row.try_get(name).map_err(|e| {
        tracing::error!(column = name, error = %e, "admin API: unexpected column");
        ApiError::Internal
    })
}

pub fn ts(row: &Row, name: &str) -> Result<String, ApiError> {
    Ok(rfc3339(col::<DateTime<Utc>>(row, name)?))
}

fn ts_opt(row: &Row, name: &str) -> Result<Option<String>, ApiError> {
    Ok(col::<Option<DateTime<Utc>>>(row, name)?.map(rfc3339))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An endpoint as shown by the API: everything but its secrets; header values and URL
/// credentials masked ([`MASK`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub tenant_id: Option<String>,
    pub all_tenants: bool,
    pub secret_count: i32,
    #[schema(value_type = Object)]
    pub headers: Value,
    pub enabled: bool,
    pub max_in_flight: i32,
    pub rate_limit: Option<f64>,
    pub description: String,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The endpoint's own retry schedule (null: `OUTBOXD_RETRY_SCHEDULE`).
    pub retry_schedule: Option<String>,
    /// The endpoint's own max age, e.g. `"2h"` (null: `OUTBOXD_MAX_AGE`).
    pub max_age: Option<String>,
    /// The client certificate it presents (mutual TLS), by name: `<name>.crt` and
    /// `<name>.key` in `OUTBOXD_CLIENT_CERT_DIR` (null: none).
    pub client_certificate: Option<String>,
}

impl Endpoint {
    pub fn from_row(row: &Row) -> Result<Endpoint, ApiError> {
        Ok(Endpoint {
            id: col(row, "id")?,
            url: masked_url(&col::<String>(row, "url")?),
            tenant_id: col(row, "tenant_id")?,
            all_tenants: col(row, "all_tenants")?,
            secret_count: col(row, "secret_count")?,
            headers: masked_headers(&col(row, "headers")?),
            enabled: col(row, "enabled")?,
            max_in_flight: col(row, "max_in_flight")?,
            rate_limit: col(row, "rate_limit")?,
            description: col(row, "description")?,
            disabled_reason: col(row, "disabled_reason")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
            retry_schedule: col(row, "retry_schedule")?,
            max_age: col::<Option<f64>>(row, "max_age_seconds")?.map(duration_text),
            client_certificate: col(row, "client_certificate")?,
        })
    }
}

/// Seconds as an `OUTBOXD_MAX_AGE`-style duration, e.g. `2h 30m`.
pub fn duration_text(seconds: f64) -> String {
    let d = std::time::Duration::from_secs_f64(seconds.clamp(0.0, 1e12));
    humantime::format_duration(d).to_string()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    pub id: i64,
    pub endpoint_id: i64,
    pub event_types: Vec<String>,
    /// The content filter (SQL/JSON path); null: every event of the types.
    pub filter: Option<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Subscription {
    pub fn from_row(row: &Row) -> Result<Subscription, ApiError> {
        Ok(Subscription {
            id: col(row, "id")?,
            endpoint_id: col(row, "endpoint_id")?,
            event_types: col(row, "event_types")?,
            filter: col(row, "filter")?,
            active: col(row, "active")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    /// The event's `event_id` (the `webhook-id`); null if the event row is already gone.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
    pub state: String,
    pub held: bool,
    pub attempt_count: i32,
    pub next_attempt_at: String,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

impl Delivery {
    pub fn from_row(row: &Row) -> Result<Delivery, ApiError> {
        Ok(Delivery {
            id: col(row, "id")?,
            event_id: col(row, "event_id")?,
            event_type: col(row, "event_type")?,
            endpoint_id: col(row, "endpoint_id")?,
            lane_key: col(row, "lane_key")?,
            state: col(row, "state")?,
            held: col(row, "held")?,
            attempt_count: col(row, "attempt_count")?,
            next_attempt_at: ts(row, "next_attempt_at")?,
            last_status: col(row, "last_status")?,
            last_error: col(row, "last_error")?,
            created_at: ts(row, "created_at")?,
            updated_at: ts(row, "updated_at")?,
            completed_at: ts_opt(row, "completed_at")?,
        })
    }
}

/// An event without its payload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Value>,
    pub created_at: String,
    pub routed_at: Option<String>,
    /// How many rows were published with this `event_id` (only the first is delivered).
    pub published: i64,
}

impl Event {
    pub fn from_row(row: &Row) -> Result<Event, ApiError> {
        Ok(Event {
            id: col(row, "id")?,
            event_id: col(row, "event_id")?,
            event_type: col(row, "event_type")?,
            resource_key: col(row, "resource_key")?,
            tenant_id: col(row, "tenant_id")?,
            headers: col(row, "headers")?,
            created_at: ts(row, "created_at")?,
            routed_at: ts_opt(row, "routed_at")?,
            published: col(row, "published")?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: i64,
    pub delivery_id: i64,
    pub endpoint_id: i64,
    pub attempt: i32,
    pub started_at: String,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub response_excerpt: Option<String>,
    pub next_attempt_at: Option<String>,
    pub replica: Option<String>,
}

impl Attempt {
    pub fn from_row(row: &Row) -> Result<Attempt, ApiError> {
        Ok(Attempt {
            id: col(row, "id")?,
            delivery_id: col(row, "delivery_id")?,
            endpoint_id: col(row, "endpoint_id")?,
            attempt: col(row, "attempt")?,
            started_at: ts(row, "started_at")?,
            duration_ms: col(row, "duration_ms")?,
            status_code: col(row, "status_code")?,
            error_kind: col(row, "error_kind")?,
            error_message: col(row, "error_message")?,
            response_excerpt: col(row, "response_excerpt")?,
            next_attempt_at: ts_opt(row, "next_attempt_at")?,
            replica: col(row, "replica")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// One page of a list: `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Where a page starts: after `after` (an id), `limit` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageStart {
    pub after: i64,
    pub limit: i64,
}

impl PageStart {
    /// `kind` tells lists apart, so a cursor of one list is refused by another.
    pub fn parse(kind: &str, limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        let after = match cursor {
            None | Some("") => 0,
            Some(c) => decode_cursor(kind, c)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor returned by this list"))?,
        };
        Ok(PageStart { after, limit })
    }

    /// Rows to ask for: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the rows fetched with [`PageStart::fetch`] to a page.
    pub fn page<T>(&self, mut data: Vec<T>, id: impl Fn(&T) -> i64, kind: &str) -> Page<T> {
        let more = data.len() as i64 > self.limit;
        data.truncate(self.limit as usize);
        let next_cursor = if more {
            data.last().map(|last| encode_cursor(kind, id(last)))
        } else {
            None
        };
        Page { data, next_cursor }
    }
}

fn encode_cursor(kind: &str, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

fn decode_cursor(kind: &str, c: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    let id = s
        .strip_prefix(kind)?
        .strip_prefix(':')?
        .parse::<i64>()
        .ok()?;
    (id >= 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_in_their_list() {
        let c = encode_cursor("endpoints", 42);
        assert_eq!(decode_cursor("endpoints", &c), Some(42));
        assert_eq!(decode_cursor("subscriptions", &c), None);
        assert_eq!(decode_cursor("endpoints", "garbage!"), None);
        let p = PageStart::parse("endpoints", Some(2), Some(&c)).unwrap();
        assert_eq!(
            p,
            PageStart {
                after: 42,
                limit: 2
            }
        );
        assert!(PageStart::parse("subscriptions", None, Some(&c)).is_err());
    }

    #[test]
    fn header_values_and_url_credentials_are_masked() {
        let h = masked_headers(&serde_json::json!({"authorization": "Bearer s3cret", "x-a": "1"}));
        assert_eq!(h, serde_json::json!({"authorization": MASK, "x-a": MASK}));
        assert_eq!(
            masked_url("https://user:pa55@hooks.example.com/x?y=1"),
            "https://********:********@hooks.example.com/x?y=1"
        );
        assert_eq!(
            masked_url("https://token@hooks.example.com/"),
            "https://********@hooks.example.com/"
        );
        assert_eq!(
            masked_url("https://hooks.example.com/"),
            "https://hooks.example.com/"
        );
    }

    #[test]
    fn limits() {
        assert_eq!(PageStart::parse("e", None, None).unwrap().limit, 50);
        assert!(PageStart::parse("e", Some(0), None).is_err());
        assert!(PageStart::parse("e", Some(501), None).is_err());
        assert_eq!(PageStart::parse("e", Some(500), None).unwrap().fetch(), 501);
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let p = PageStart { after: 0, limit: 2 };
        let page = p.page(vec![1, 2, 3], |x| *x, "e");
        assert_eq!(page.data, vec![1, 2]);
        let next = page.next_cursor.unwrap();
        assert_eq!(decode_cursor("e", &next), Some(2));
        let last = p.page(vec![3], |x| *x, "e");
        assert_eq!(last.next_cursor, None);
        let exact = p.page(vec![1, 2], |x| *x, "e");
        assert_eq!(exact.next_cursor, None);
    }
}
