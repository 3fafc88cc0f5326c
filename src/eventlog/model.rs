//! What the event log returns: plain data, serialized as-is by `/v1` (and described in its
//! OpenAPI document) and rendered by the console.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;

use super::{Error, col};

/// A delivery's status in the event log: its state, with `pending` told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    /// Waiting for its first attempt (or revived by an operator).
    Pending,
    /// Waiting behind an earlier delivery of the same resource (its lane head).
    Held,
    /// Pending after at least one failed attempt.
    Retrying,
    /// In flight: leased by a replica.
    Delivering,
    Succeeded,
    /// Retries ran out, or the error cannot be fixed by retrying.
    Dead,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Held,
        Status::Retrying,
        Status::Delivering,
        Status::Succeeded,
        Status::Dead,
    ];

    /// The name in the API and in `outbox.delivery_status()`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Held => "held",
            Status::Retrying => "retrying",
            Status::Delivering => "delivering",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
        }
    }

    /// What the console calls it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Held => "held behind its lane head",
            Status::Retrying => "retrying",
            Status::Delivering => "in flight",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
        }
    }

    /// Parses an API or form value (`in_flight` is accepted for `delivering`).
    pub fn parse(s: &str) -> Result<Status, Error> {
        if s == "in_flight" {
            return Ok(Status::Delivering);
        }
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                Error::invalid(
                    "status",
                    format!(
                        "must be one of {}, got {:?}",
                        names.join(", "),
                        crate::eventlog::search::shorten(s)
                    ),
                )
            })
    }

    fn from_row(row: &Row, name: &str) -> Result<Status, Error> {
        let s: String = col(row, name)?;
        Status::parse(&s)
    }
}

/// One delivery of an event, as a search result shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DeliverySummary {
    pub id: i64,
    pub endpoint_id: i64,
    pub status: Status,
    /// Attempts since it was created (or last revived).
    pub attempt_count: i32,
    pub last_status: Option<i32>,
    /// The error kind of its latest attempt (`timeout`, `connect`, `status`, …).
    pub last_error_kind: Option<String>,
}

/// An event as a search result shows it (no payload).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventSummary {
    /// `outbox.events.id`: outbox order.
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// One per endpoint it went to (more than one per endpoint after a replay).
    pub deliveries: Vec<DeliverySummary>,
}

impl EventSummary {
    pub(super) fn from_row(row: &Row) -> Result<EventSummary, Error> {
        Ok(EventSummary {
            id: col(row, "id")?,
            event_id: col(row, "event_id")?,
            event_type: col(row, "event_type")?,
            resource_key: col(row, "resource_key")?,
            tenant_id: col(row, "tenant_id")?,
            created_at: col(row, "created_at")?,
            deliveries: Vec::new(),
        })
    }
}

/// A page of search results, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventPage {
    pub data: Vec<EventSummary>,
    /// Pass it back as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An event in full, except its payload when that is large.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventDetail {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub resource_key: Option<String>,
    pub tenant_id: Option<String>,
    /// The extra request headers of its deliveries.
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub routed_at: Option<DateTime<Utc>>,
    /// How many rows were published with this `event_id` (only the first is delivered).
    pub published: i64,
    /// The payload's size as stored (compressed when large).
    pub payload_stored_bytes: i32,
    /// The payload, pretty-printed, when it is small enough to show
    /// ([`super::detail::PREVIEW_MAX_STORED_BYTES`]); download it otherwise.
    pub payload_pretty: Option<String>,
    pub deliveries: Vec<Delivery>,
}

/// Where a held delivery stands in its lane (the endpoint's queue for one resource).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct LanePosition {
    /// The delivery at the head of the lane, being sent or retried: this one waits for it
    /// to succeed or die.
    pub waiting_behind: Option<i64>,
    /// Held deliveries of the lane ahead of this one (counted up to 10 000).
    pub held_ahead: i64,
}

/// A delivery (event × endpoint) in full.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = DeliveryDetail)]
pub(crate) struct Delivery {
    pub id: i64,
    pub event_pk: i64,
    pub event_id: String,
    pub endpoint_id: i64,
    pub endpoint_url: String,
    /// The ordering lane: the event's resource_key (hashed when very long); null = unordered.
    pub lane_key: Option<String>,
    pub status: Status,
    pub attempt_count: i32,
    /// When it is due (for pending and retrying deliveries).
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Only for held deliveries.
    pub lane: Option<LanePosition>,
    /// Newest first (at most [`super::detail::MAX_ATTEMPTS`]).
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    pub(super) fn from_row(row: &Row) -> Result<Delivery, Error> {
        let status = Status::from_row(row, "status")?;
        let lane = match status {
            Status::Held => Some(LanePosition {
                waiting_behind: col(row, "waiting_behind")?,
                held_ahead: col::<Option<i64>>(row, "held_ahead")?.unwrap_or(0),
            }),
            _ => None,
        };
        Ok(Delivery {
            id: col(row, "id")?,
            event_pk: col(row, "event_pk")?,
            event_id: col(row, "event_id")?,
            endpoint_id: col(row, "endpoint_id")?,
            endpoint_url: crate::mask::masked_url(&col::<String>(row, "endpoint_url")?),
            lane_key: col(row, "lane_key")?,
            status,
            attempt_count: col(row, "attempt_count")?,
            next_attempt_at: col(row, "next_attempt_at")?,
            last_status: col(row, "last_status")?,
            last_error: col(row, "last_error")?,
            created_at: col(row, "created_at")?,
            updated_at: col(row, "updated_at")?,
            completed_at: col(row, "completed_at")?,
            lane,
            attempts: Vec::new(),
        })
    }
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = AttemptDetail)]
pub(crate) struct Attempt {
    /// The delivery's claim number (a gap: a replica died during that attempt).
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    /// The first 4 KiB of the receiver's answer.
    pub response_excerpt: Option<String>,
    /// When the next attempt was scheduled (null: none).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub replica: Option<String>,
}

impl Attempt {
    pub(super) fn from_row(row: &Row) -> Result<Attempt, Error> {
        Ok(Attempt {
            attempt: col(row, "attempt")?,
            started_at: col(row, "started_at")?,
            duration_ms: col(row, "duration_ms")?,
            status_code: col(row, "status_code")?,
            error_kind: col(row, "error_kind")?,
            error_message: col(row, "error_message")?,
            response_excerpt: col(row, "response_excerpt")?,
            next_attempt_at: col(row, "next_attempt_at")?,
            replica: col(row, "replica")?,
        })
    }
}

/// An event type seen, with how many events of it were routed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventType {
    pub event_type: String,
    pub events: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// An endpoint's health at a glance. Counts stop at [`super::health::COUNT_CAP`]: a larger
/// backlog shows as that number (the page stays fast whatever the backlog).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EndpointHealth {
    pub id: i64,
    pub url: String,
    pub tenant_id: Option<String>,
    pub all_tenants: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub description: String,
    pub max_in_flight: i32,
    pub in_flight: i64,
    /// Pending, held and retrying.
    pub pending: i64,
    pub dead: i64,
    /// Age of the event of its oldest unfinished delivery.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    pub attempts_last_hour: i64,
    pub failures_last_hour: i64,
    /// Successful attempts / attempts over the last hour (null without attempts).
    pub success_rate_last_hour: Option<f64>,
    pub last_error_kind: Option<String>,
    pub last_error_message: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The circuit breaker as this replica sees it: `closed`, `open` or `half_open`.
    pub circuit: String,
    /// Active subscription patterns.
    pub event_types: Vec<String>,
    /// The client certificate it presents (mutual TLS), by name; null: none.
    pub client_certificate: Option<String>,
}

/// A registered event type of the catalog (`outbox.event_types`), as the console and the
/// portal show it.
#[derive(Debug, Clone)]
pub(crate) struct CatalogEntry {
    pub event_type: String,
    pub description: Option<String>,
    /// The example payload, pretty-printed JSON.
    pub example: Option<String>,
    pub deprecated: bool,
}
