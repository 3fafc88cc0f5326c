//! What the receiver answers: a [`Reply`] per request, chosen by a [`Script`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::ReceivedRequest;

/// Decides the reply to each request. It runs on the connection's task for every request, so
/// it must be quick; it may keep state of its own (counters, a seeded RNG behind a mutex) and
/// observe what it is asked (the bench counts duplicates and checks order in it).
pub type Script = Arc<dyn Fn(&ReceivedRequest) -> Reply + Send + Sync>;

/// Wraps a closure as a [`Script`].
pub fn script(f: impl Fn(&ReceivedRequest) -> Reply + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

/// Wraps a closure that also takes the request's 0-based arrival number (the tests' form).
pub fn behaviour(f: impl Fn(&ReceivedRequest, u64) -> Reply + Send + Sync + 'static) -> Script {
    Arc::new(move |req: &ReceivedRequest| f(req, req.seq))
}

/// Always answers `reply`.
pub fn always(reply: Reply) -> Script {
    Arc::new(move |_: &ReceivedRequest| reply.clone())
}

/// The first request this script is asked about gets the first reply, the second the second,
/// …; the last one repeats. Counted per script, so it starts over when installed with
/// [`Receiver::set_script`](super::Receiver::set_script).
pub fn sequence(replies: impl IntoIterator<Item = Reply>) -> Script {
    let replies: Vec<Reply> = replies.into_iter().collect();
    assert!(!replies.is_empty(), "sequence() needs at least one reply");
    let next = AtomicUsize::new(0);
    Arc::new(move |_: &ReceivedRequest| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        replies[i.min(replies.len() - 1)].clone()
    })
}

/// What the receiver does with a request (see [`Reply`]'s constructors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not decided yet (the script is being asked).
    Pending,
    /// A status line (and headers and a body).
    Status(u16),
    /// No answer; the connection is closed after a while.
    Hang,
    /// No answer; the connection is reset (TCP RST).
    Reset,
    /// No answer; the connection is closed (TCP FIN).
    Close,
}

impl Answer {
    /// The status, for [`Answer::Status`].
    pub fn status(self) -> Option<u16> {
        match self {
            Answer::Status(code) => Some(code),
            _ => None,
        }
    }

    pub fn is_2xx(self) -> bool {
        self.status().is_some_and(|c| (200..300).contains(&c))
    }
}

/// How the body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The body, all at once, with `content-length`.
    Whole,
    /// `total` bytes (`content-length`): the body at once, the rest in [`TRICKLE_PIECES`] pieces
    /// spread evenly over `over`.
    Trickle { total: u64, over: Duration },
    /// `total` bytes (`content-length`), as fast as the client reads.
    Huge { total: u64 },
    /// Chunked, until the client hangs up (or [`ENDLESS_CAP`] bytes).
    Endless,
}

/// The trickled part of a body comes in this many pieces.
pub(crate) const TRICKLE_PIECES: u32 = 20;

/// An endless body ends after this many bytes, so that a client that keeps reading cannot keep
/// a test running for ever (1 GiB: seconds at loopback speed, far beyond any read limit).
pub const ENDLESS_CAP: u64 = 1 << 30;

/// What the receiver answers to one request. Start from [`Reply::ok`], [`Reply::status`],
/// [`Reply::hang`], [`Reply::reset`] or [`Reply::close`]; the `with_…` methods and body shapes
/// then add to a status reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) answer: Answer,
    /// Hang: for how long, before the connection is closed.
    pub(crate) hang: Duration,
    /// Wait this long before doing anything (the status line, the reset, …).
    pub(crate) delay: Duration,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
    pub(crate) shape: Shape,
    /// What trickled, huge and endless bodies are made of after `body`, repeated.
    pub(crate) fill: Bytes,
    pub(crate) label: Option<&'static str>,
}

impl Reply {
    /// `200`, at once, empty body.
    pub fn ok() -> Self {
        Reply::status(200)
    }

    /// `status`, at once, empty body. A number that is no HTTP status is sent as `500`.
    pub fn status(status: u16) -> Self {
        Reply::new(Answer::Status(status))
    }

    fn new(answer: Answer) -> Self {
        Reply {
            answer,
            hang: Duration::ZERO,
            delay: Duration::ZERO,
            headers: Vec::new(),
            body: Bytes::new(),
            shape: Shape::Whole,
            fill: Bytes::from_static(b"a"),
            label: None,
        }
    }

    /// Reads the request, never answers, and closes the connection after `d` (unless the
    /// client gave up first): an endpoint that hangs past the client's timeout.
    pub fn hang(d: Duration) -> Self {
        Reply {
            hang: d,
            ..Reply::new(Answer::Hang)
        }
    }

    /// Reads the request and resets the connection (TCP RST, no answer): the client sees
    /// "connection reset by peer".
    pub fn reset() -> Self {
        Reply::new(Answer::Reset)
    }

    /// Reads the request and closes the connection without an answer (TCP FIN): the client
    /// sees the connection end before a response.
    pub fn close() -> Self {
        Reply::new(Answer::Close)
    }

    /// Waits `delay` before answering (before the status line, the reset or the close): a slow
    /// endpoint. The request is recorded at once and marked answered after the delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Adds a header. Panics on a name or value HTTP does not allow: a mistake in the test.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("reply header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("reply header {name} value {value:?}: {e}"));
        self.headers.push((name, value));
        self
    }

    /// The body (for trickled, huge and endless bodies: how they start).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// A body of `total_bytes` (`content-length`): the [`with_body`](Reply::with_body) bytes
    /// at once, then the rest in 20 pieces, one every `over / 20`. With
    /// [`with_delay`](Reply::with_delay) the status line comes late too.
    pub fn trickle(mut self, total_bytes: u64, over: Duration) -> Self {
        self.shape = Shape::Trickle {
            total: total_bytes,
            over,
        };
        self
    }

    /// A body of `n_bytes` (`content-length`), streamed in blocks as fast as the client reads
    /// (never allocated at once): for a client that must not read it all.
    pub fn huge_body(mut self, n_bytes: u64) -> Self {
        self.shape = Shape::Huge { total: n_bytes };
        self
    }

    /// A chunked body that never ends until the client hangs up (at most [`ENDLESS_CAP`]
    /// bytes).
    pub fn endless_body(mut self) -> Self {
        self.shape = Shape::Endless;
        self
    }

    /// What trickled, huge and endless bodies repeat after their start (default `a`), e.g.
    /// `"é"` to check that a reader cuts text at a character boundary.
    pub fn fill(mut self, pattern: impl Into<Bytes>) -> Self {
        let pattern = pattern.into();
        assert!(!pattern.is_empty(), "the fill pattern must not be empty");
        self.fill = pattern;
        self
    }

    /// A name recorded with the request (e.g. the chaos receiver's current mode), so a log
    /// can later say why a request was answered as it was.
    pub fn label(mut self, label: &'static str) -> Self {
        self.label = Some(label);
        self
    }

    /// What this reply does.
    pub fn answer(&self) -> Answer {
        self.answer
    }

    /// The status, for a status reply.
    pub fn status_code(&self) -> Option<u16> {
        self.answer.status()
    }
}
