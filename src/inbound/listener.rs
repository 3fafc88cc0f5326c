//! The public listener: `POST /in/{source}` and nothing else (no admin API, no metrics).
//!
//! HTTP/1.1 on hyper's connection directly, because the defences are about the connection:
//!
//! * **Slow clients** (slowloris): the request head must arrive within
//!   `OUTBOXD_INBOUND_READ_TIMEOUT` (hyper's header timeout, which also closes idle
//!   keep-alive connections), and then the body within the same time again, whatever its
//!   pace: a body trickled at 1 byte/s gets 408.
//! * **Floods**: at most [`MAX_HEADERS`] headers of [`MAX_HEADER_BYTES`] in all (hyper answers
//!   431 beyond); at most `OUTBOXD_INBOUND_MAX_CONNECTIONS` connections (the next ones get a
//!   503 and are closed); a body larger than its source's `max_body_bytes` gets 413 as soon as
//!   `Content-Length` (or the bytes read so far) says so; bodies held in memory are bounded
//!   by `OUTBOXD_INBOUND_MAX_BUFFERED` (503 beyond).
//! * **Answers**: 2xx only after the request is committed ([`super::writer`]); 404 unknown
//!   source, 405 other methods, 401 signature (counted per source), 400 a key that cannot be
//!   read, 408, 413, 429 (the source's rate limit), 503 with `Retry-After` when the database
//!   is down, outboxd is overloaded, or the replica has not finished starting (it waits for
//!   PostgreSQL then: [`unavailable_until`]).
//!
//! The order of checks makes a refusal cheap: route and source (no body read), rate limit,
//! declared size, then the body, then the signature, then the database.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as HyperBody;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Inbound;
use super::request::{Incoming, NotAdmitted, admit};
use super::writer::{Job, Stored, WriteError};
use crate::metrics::names;

/// Headers per request at most (hyper answers 431 beyond).
pub(crate) const MAX_HEADERS: usize = 100;
/// Bytes of request line and headers at most (hyper answers 431 beyond).
pub(crate) const MAX_HEADER_BYTES: usize = 32 * 1024;
/// `Retry-After` of a 503: the database is down or outboxd is overloaded.
const RETRY_AFTER_SECS: u64 = 5;
/// How long a request waits for its batch to be committed (the writer's own timeout is shorter).
const COMMIT_WAIT: Duration = Duration::from_secs(30);
/// The label of requests for no known source.
const NO_SOURCE: &str = "(none)";

type Reply = Response<Full<Bytes>>;

/// Accepts connections until `shutdown`, then lets the open ones finish their request (up to
/// `grace`) and closes them.
pub(crate) async fn serve(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "inbound listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = inbound.connections.clone().try_acquire_owned() else {
            metrics::counter!(names::INBOUND_REQUESTS, "source" => NO_SOURCE, "result" => "overloaded")
                .increment(1);
            tokio::spawn(refuse_connection(stream));
            continue;
        };
        let (inbound, stop) = (inbound.clone(), shutdown.clone());
        connections.spawn(async move {
            connection(stream, peer, inbound, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + grace;
    while !connections.is_empty() {
        if tokio::time::timeout_at(deadline, connections.join_next())
            .await
            .is_err()
        {
            tracing::warn!(
                open = connections.len(),
                "inbound listener: closing connections still open after the grace period"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
    }
}

/// Until `started` is cancelled (start-up is done: the database answered, the schema and the
/// role were checked), every connection gets a 503 with `Retry-After`; then the listener is
/// given back for [`serve`]. The listener is bound at start-up so that a taken port fails at
/// once; without this, a replica waiting for PostgreSQL would leave providers' connections
/// unanswered in the accept queue until they time out, where the promise is a 503.
pub(crate) async fn unavailable_until(
    listener: TcpListener,
    started: CancellationToken,
) -> TcpListener {
    let mut answering = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = started.cancelled() => break,
            a = listener.accept() => a,
        };
        while answering.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                metrics::counter!(names::INBOUND_REQUESTS, "source" => NO_SOURCE, "result" => "unavailable")
                    .increment(1);
                answering.spawn(not_started(stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbound listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // The answers already begun finish on their own (each is bounded).
    answering.detach_all();
    listener
}

/// A connection while start-up is not done: read what the client sent (briefly), answer 503
/// with `Retry-After`, close, and read the rest away (bounded), so the close is a FIN the
/// client reads the answer before, not a reset.
async fn not_started(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {RETRY_AFTER_SECS}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{STARTING}",
        STARTING.len()
    );
    let answered = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// The body of [`not_started`]'s 503.
const STARTING: &str =
    r#"{"error":{"code":"unavailable","message":"outboxd is starting; try again"}}"#;

/// One connection beyond the limit: a 503 without reading anything, then close.
async fn refuse_connection(mut stream: TcpStream) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: {RETRY_AFTER_SECS}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(response.as_bytes()),
    )
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    inbound: Arc<Inbound>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let read_timeout = inbound.read_timeout;
    let service = service_fn(move |req| {
        let inbound = inbound.clone();
        async move { Ok::<_, Infallible>(handle(&inbound, peer, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// What one request got, for the answer and the metrics.
struct Answer {
    status: StatusCode,
    result: &'static str,
    body: serde_json::Value,
    retry_after: Option<u64>,
    allow: Option<&'static str>,
    /// The body was not read to its end: close the connection after answering.
    close: bool,
    /// A plain-text body instead of JSON (a verification handshake's echo).
    plain: Option<String>,
}

impl Answer {
    fn new(status: StatusCode, result: &'static str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            result,
            body: json!({ "error": message.into() }),
            retry_after: None,
            allow: None,
            close: false,
            plain: None,
        }
    }

    fn unavailable(result: &'static str, message: impl Into<String>) -> Answer {
        Answer {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Answer::new(StatusCode::SERVICE_UNAVAILABLE, result, message)
        }
    }

    fn closing(mut self) -> Answer {
        self.close = true;
        self
    }

    fn into_response(self) -> Reply {
        let (body, content_type) = match self.plain {
            Some(text) => (Bytes::from(text), "text/plain; charset=utf-8"),
            None => (Bytes::from(self.body.to_string()), "application/json"),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = self.status;
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

async fn handle(inbound: &Inbound, peer: SocketAddr, req: Request<HyperBody>) -> Reply {
    let (source, answer) = match route(inbound, peer, req).await {
        Ok((source, answer)) | Err((source, answer)) => (source, answer),
    };
    metrics::counter!(names::INBOUND_REQUESTS, "source" => source, "result" => answer.result)
        .increment(1);
    answer.into_response()
}

/// The source's name for the metrics label (bounded: only configured names), and the answer.
type Routed = (String, Answer);

async fn route(
    inbound: &Inbound,
    peer: SocketAddr,
    req: Request<HyperBody>,
) -> Result<Routed, Routed> {
    let unknown = |a: Answer| (NO_SOURCE.to_owned(), a);
    let name = req
        .uri()
        .path()
        .strip_prefix("/in/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            unknown(Answer::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; sources are at /in/{source}",
            ))
        })?;
    let entry = match inbound.sources.get(&name, &inbound.pool).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return Err(unknown(Answer::new(
                StatusCode::NOT_FOUND,
                "unknown_source",
                format!("no source named {:?}", shorten(&name)),
            )));
        }
        Err(e) => {
            tracing::warn!(error = %e, "inbound: cannot look a source up");
            return Err(unknown(Answer::unavailable(
                "unavailable",
                "the database is unavailable; try again",
            )));
        }
    };
    let source = match entry {
        Ok(s) => s,
        Err(_) => {
            return Err((
                name,
                Answer::unavailable(
                    "misconfigured",
                    "this source is misconfigured on our side; try again later",
                ),
            ));
        }
    };
    let label = source.name.clone();
    let fail = |a: Answer| (label.clone(), a);
    if req.method() == Method::GET
        && let Some(param) = &source.get_challenge
    {
        return Ok(fail(challenge(req.uri().query(), param)));
    }
    if req.method() != Method::POST {
        let mut a = Answer::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only POST is accepted here",
        );
        a.allow = Some(if source.get_challenge.is_some() {
            "POST, GET"
        } else {
            "POST"
        });
        return Err(fail(a));
    }
    if !source.enabled {
        return Err(fail(Answer::unavailable(
            "disabled",
            "this source is paused; try again later",
        )));
    }
    if let Some(rate) = source.rate_limit
        && let Err(wait) = inbound.limiter().take(&source.name, rate, Instant::now())
    {
        let mut a = Answer::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this source; slow down",
        );
        a.retry_after = Some(wait.as_secs_f64().ceil() as u64);
        return Err(fail(a));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > source.max_body_bytes as u64) {
        return Err(fail(too_large(source.max_body_bytes).closing()));
    }

    let (parts, body) = req.into_parts();
    let deadline = tokio::time::Instant::now() + inbound.read_timeout;
    let read = read_body(body, declared, source.max_body_bytes, inbound);
    let (body, permit) = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => {
            return Err(fail(
                Answer::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "the request body did not arrive in time",
                )
                .closing(),
            ));
        }
        Ok(Err(a)) => return Err(fail(a.closing())),
        Ok(Ok(b)) => b,
    };
    let incoming = Incoming {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        peer: Some(peer.ip()),
    };
    let accepted = match admit(&source, incoming, chrono::Utc::now().timestamp()) {
        Ok(a) => a,
        Err(NotAdmitted::Unverified(why)) => {
            return Err(fail(Answer::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                why.to_string(),
            )));
        }
        Err(NotAdmitted::NotJson(why)) => {
            return Err(fail(Answer::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("the body is not JSON, but this source reads a key from it: {why}"),
            )));
        }
    };
    let stored = store(inbound, accepted).await;
    drop(permit);
    match stored {
        Ok(Stored::New(id)) => Ok(fail(Answer {
            body: json!({ "received": true, "request_id": id }),
            ..Answer::new(StatusCode::OK, "stored", "")
        })),
        Ok(Stored::Duplicate) => Ok(fail(Answer {
            body: json!({ "received": true, "duplicate": true }),
            ..Answer::new(StatusCode::OK, "duplicate", "")
        })),
        Err(WriteError::Stopped) => Err(fail(Answer::unavailable(
            "unavailable",
            "outboxd is shutting down; try again",
        ))),
        // The cause is in outboxd's log (the writer's warning), not in a public answer.
        Err(_) => Err(fail(Answer::unavailable(
            "unavailable",
            "the request was not stored; try again",
        ))),
    }
}

fn too_large(max: usize) -> Answer {
    Answer::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is larger than this source's limit of {max} bytes"),
    )
}

/// A GET verification handshake: echo the query parameter `param`.
fn challenge(query: Option<&str>, param: &str) -> Answer {
    let value = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == param)
            .map(|(_, v)| v.into_owned())
    });
    match value {
        Some(v) if v.len() <= 1024 => Answer {
            plain: Some(v),
            ..Answer::new(StatusCode::OK, "challenge", "")
        },
        _ => Answer::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("a GET here must carry the query parameter {param:?}"),
        ),
    }
}

/// Reads the whole body, refusing it (413) once it passes `max`, and holding its bytes
/// against the buffered-bytes budget (503 when that is spent).
async fn read_body(
    mut body: HyperBody,
    declared: Option<u64>,
    max: usize,
    inbound: &Inbound,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), Answer> {
    let mut buf = BytesMut::with_capacity(declared.map_or(8192, |n| n as usize).min(max));
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Answer::new(
                StatusCode::BAD_REQUEST,
                "incomplete",
                format!("could not read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > max {
            return Err(too_large(max));
        }
        let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let permit = inbound
            .buffered
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| {
                Answer::unavailable("overloaded", "too many request bodies in flight; try again")
            })?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

/// Hands the request to the writers and waits for the commit.
async fn store(inbound: &Inbound, req: super::request::Accepted) -> Result<Stored, WriteError> {
    let (done, answer) = oneshot::channel();
    inbound
        .queue
        .try_send(Job { req, done })
        .map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => {
                WriteError::Unavailable("too many requests waiting to be stored".into())
            }
            tokio::sync::mpsc::error::TrySendError::Closed(_) => WriteError::Stopped,
        })?;
    match tokio::time::timeout(COMMIT_WAIT, answer).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(WriteError::Stopped),
        Err(_) => Err(WriteError::Timeout(COMMIT_WAIT)),
    }
}

fn shorten(s: &str) -> &str {
    &s[..s.floor_char_boundary(64)]
}
