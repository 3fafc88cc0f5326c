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
//! ```
//!
//! * `pending` + `held`: an earlier delivery of the same `resource_key` to the same endpoint
//!   is not finished yet (per-resource order, SPEC §4). The lane's head is the only
//!   non-held one; when it ends (`succeeded` or `dead`) the next one is promoted in the same
//!   transaction (`crate::record`).
//! * `delivering` is held under a lease; `crate::maintenance` returns expired leases to
//!   `pending`, so a killed replica's work is redelivered (same `webhook-id`).
//! * An [`Outcome`] is data: [`crate::retry`] turns it into the next state.

pub mod http;

use std::time::Duration;

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
        /// First bytes (at most 4 KiB) of the response body, lossily decoded.
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

    /// 410 Gone: the receiver asks us to stop; the endpoint gets disabled.
    pub fn is_gone(&self) -> bool {
        self.status() == Some(410)
    }
}
