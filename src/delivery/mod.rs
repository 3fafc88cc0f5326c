//! Delivery: one HTTP attempt of one event to one endpoint, and the state machine around it.
//!
//! ```text
//!              route (lane idle)                 claim (due, lease)
//!   [event] ──────────────────────► pending ─────────────────────────► delivering
//!      │                              ▲  ▲                                │  │  │
//!      │ route (lane busy)            │  │ retry: next_attempt_at =       │  │  │ 2xx
//!      ▼                              │  │ backoff / Retry-After          │  │  ▼
//!   pending+held ──── head done ──────┘  └────────────────────────────────┘  │ succeeded
//!                     (promote)            lease expired (replica died) ─────┤
//!                                          max age / permanent error ────────┴──► dead
//!                                                                    outbox.retry_dead() ──► pending
//!   pending+held ──── head done + hand-off (leased at once by the recording replica) ──► delivering
//! ```
//!
//! * `pending` + `held`: an earlier delivery of the same `resource_key` to the same endpoint
//!   is not finished yet (per-resource order, SPEC §4). The lane's head is the only
//!   non-held one; when it ends (`succeeded` or `dead`) the next one is promoted in the same
//!   transaction (`crate::record`), and leased right there to the recording replica when its
//!   claim policy allows (hot lane hand-off: no claim round between a lane's deliveries).
//! * `delivering` is held under a lease; `crate::maintenance` returns expired leases to
//!   `pending`, so a killed replica's work is redelivered (same `webhook-id`).
//! * An [`Outcome`] is data: [`crate::retry`] turns it into the next state.

pub(crate) mod http;
pub mod relay;

use std::time::Duration;

use chrono::{DateTime, Utc};

/// At most this many bytes of a response body are read (SPEC §3: "the first 4 KiB") and
/// recorded in `outbox.attempts.response_excerpt`.
pub(crate) const EXCERPT_LIMIT: usize = 4096;

/// A leased delivery (`delivering`), as the claim returns it: everything a worker needs to
/// make one attempt and the recorder to write its outcome.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The database's clock at the claim, and when (locally) the claim returned: retry
    /// times are computed in database time, so a skewed sidecar clock cannot shift them.
    pub db_now: DateTime<Utc>,
    pub claimed_at: std::time::Instant,
    pub id: i64,
    pub event_pk: i64,
    /// The lease token: the completion only applies while it still matches.
    pub claim_count: i32,
    /// Attempts made before this one.
    pub attempt_count: i32,
    pub endpoint_id: i64,
    pub lane_key: Option<String>,
    pub event_id: String,
    pub event_created_at: DateTime<Utc>,
    pub headers: Option<String>,
    /// The bytes to send; `None` when they are large: fetch them with `sql::FETCH_PAYLOAD`
    /// (a JSON payload) or `sql::FETCH_REQUEST_BODY` (a relayed inbound request).
    pub body: Option<bytes::Bytes>,
    /// The event relays a stored inbound request (`outbox.events.request_id`).
    pub request_id: Option<i64>,
    /// That request's content type and headers; `None` also when the request is gone.
    pub relayed: Option<relay::StoredRequest>,
}

impl Claimed {
    /// A leased delivery from a row with the claim's columns (`sql/engine/claim.sql`'s
    /// `RETURNING`, also `sql/engine/record_complete.sql`'s hand-offs); the lease began at
    /// `claimed_at`.
    pub fn from_row(r: &tokio_postgres::Row, claimed_at: std::time::Instant) -> Claimed {
        let request_id: Option<i64> = r.get("request_id");
        let relayed = match (request_id, r.get::<_, Option<String>>("request_source")) {
            (Some(request_id), Some(source)) => Some(relay::StoredRequest {
                request_id,
                source,
                content_type: r.get("request_content_type"),
                query: r.get("request_query"),
                headers: r
                    .get::<_, Option<String>>("request_headers")
                    .unwrap_or_default(),
            }),
            _ => None,
        };
        let body = match request_id {
            None => r
                .get::<_, Option<String>>("body")
                .map(|b| bytes::Bytes::from(b.into_bytes())),
            Some(_) => r
                .get::<_, Option<Vec<u8>>>("request_body")
                .map(bytes::Bytes::from),
        };
        Claimed {
            db_now: r.get("db_now"),
            claimed_at,
            id: r.get("id"),
            event_pk: r.get("event_pk"),
            claim_count: r.get("claim_count"),
            attempt_count: r.get("attempt_count"),
            endpoint_id: r.get("endpoint_id"),
            lane_key: r.get("lane_key"),
            event_id: r.get("event_id"),
            event_created_at: r.get("event_created_at"),
            headers: r.get("headers"),
            body,
            request_id,
            relayed,
        }
    }

    /// The database's clock now, extrapolated from the claim with the monotonic clock.
    pub fn db_time(&self) -> DateTime<Utc> {
        self.db_now + chrono::Duration::from_std(self.claimed_at.elapsed()).unwrap_or_default()
    }
}

/// What went wrong with an attempt; stored in `outbox.attempts.error_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Connect or total timeout elapsed.
    Timeout,
    /// TCP connection refused/reset, or the connection broke mid-request.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// TLS handshake or certificate failure.
    Tls,
    /// The receiver answered with a non-2xx status.
    Status,
    /// The payload is larger than the configured maximum request body.
    BodyTooLarge,
    /// The URL resolves to an address the SSRF guard refuses.
    BlockedAddress,
    /// The endpoint URL cannot be used (unparsable, unsupported scheme).
    InvalidUrl,
    /// The event cannot be sent as is (e.g. an invalid value in its `headers`).
    InvalidEvent,
    /// Any other failure while sending the request or reading the response.
    Request,
}

impl ErrorKind {
    /// Every kind (the values of `outboxd_attempt_errors_total{kind}`).
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::Dns,
        ErrorKind::Tls,
        ErrorKind::Status,
        ErrorKind::BodyTooLarge,
        ErrorKind::BlockedAddress,
        ErrorKind::InvalidUrl,
        ErrorKind::InvalidEvent,
        ErrorKind::Request,
    ];

    /// The value stored in `outbox.attempts.error_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Status => "status",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::BlockedAddress => "blocked_address",
            ErrorKind::InvalidUrl => "invalid_url",
            ErrorKind::InvalidEvent => "invalid_event",
            ErrorKind::Request => "request",
        }
    }

    /// Errors that retrying cannot fix: the delivery goes straight to `dead`.
    pub fn is_permanent(self) -> bool {
        matches!(self, ErrorKind::BodyTooLarge | ErrorKind::InvalidEvent)
    }
}

/// The result of one HTTP attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A 2xx arrived within the timeout.
    Delivered {
        status: u16,
        /// First bytes (at most [`EXCERPT_LIMIT`]) of the response body, lossily decoded.
        excerpt: String,
    },
    /// Anything else.
    Failed {
        kind: ErrorKind,
        /// The HTTP status, when a response arrived.
        status: Option<u16>,
        /// Human-readable detail for `outbox.attempts.error_message`. Never contains secrets.
        message: String,
        excerpt: Option<String>,
        /// `Retry-After` of a 429/503 response, uncapped (the retry policy caps it).
        retry_after: Option<Duration>,
    },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status, .. } => Some(*status),
            Outcome::Failed { status, .. } => *status,
        }
    }

    /// A failure that is the event's own (it cannot be sent as is, or is too large), not the
    /// endpoint's: it does not count against the endpoint's circuit breaker.
    pub fn is_event_fault(&self) -> bool {
        matches!(self, Outcome::Failed { kind, .. } if kind.is_permanent())
    }

    /// 410 Gone: the receiver asks us to stop; the endpoint gets disabled.
    pub fn is_gone(&self) -> bool {
        self.status() == Some(410)
    }
}
