//! The receiver's connections: the accept loop, one hyper HTTP/1 connection per TCP
//! connection, the request handler that asks the script and carries out its [`Reply`], and the
//! response body (whole, trickled, huge or endless).

use std::convert::Infallible;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::reply::{Shape, TRICKLE_PIECES};
use super::{Answer, ENDLESS_CAP, ReceivedRequest, Reply, Shared};

/// Larger request bodies are refused (counted as protocol errors): nothing outboxd sends
/// comes near it.
const MAX_REQUEST_BODY: usize = 128 * 1024 * 1024;

/// Accepts connections until `stop`, then ends every connection and returns. The connection
/// tasks live in a [`JoinSet`] owned here, so aborting this task aborts them all.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if shared.is_probe(peer) {
                        continue;
                    }
                    shared.connections.fetch_add(1, Ordering::SeqCst);
                    let open = Open::new(&shared);
                    connections.spawn(serve_connection(Arc::clone(&shared), stream, open));
                }
                // E.g. out of file descriptors: try again in a moment.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    connections.shutdown().await;
}

/// Where a connection is in its current request, to tell what the client's hang-up cut off.
const IDLE: u8 = 0;
const READING_BODY: u8 = 1;
const ANSWERING: u8 = 2;
/// A cut-off request that has been counted already.
const COUNTED: u8 = 3;

/// One TCP connection, as its request handlers see it.
struct Connection {
    /// A second descriptor of the socket: hyper owns the stream, but a reset needs SO_LINGER 0
    /// on it. The socket is closed when both descriptors are (both go when the connection's
    /// task ends).
    socket: socket2::Socket,
    /// A handler asks the connection's task to drop the connection (no answer): reset, close,
    /// the end of a hang.
    end: tokio::sync::Notify,
    phase: AtomicU8,
}

impl Connection {
    fn end(&self) {
        self.end.notify_one();
    }

    /// Moves the phase from `from` to `to`; whether it was `from`.
    fn advance(&self, from: u8, to: u8) -> bool {
        self.phase
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// A connection counted open until this is dropped with its task (after everything else the
/// task counted); waiters are told.
struct Open(Arc<Shared>);

impl Open {
    fn new(shared: &Arc<Shared>) -> Open {
        shared.open_connections.fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(shared))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
        self.0.changed();
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, _open: Open) {
    let _ = stream.set_nodelay(true);
    let Ok(fd) = stream.as_fd().try_clone_to_owned() else {
        return; // out of descriptors: drop the connection
    };
    let conn = Arc::new(Connection {
        socket: socket2::Socket::from(fd),
        end: tokio::sync::Notify::new(),
        phase: AtomicU8::new(IDLE),
    });
    let service = {
        let (shared, conn) = (Arc::clone(&shared), Arc::clone(&conn));
        hyper::service::service_fn(move |req| {
            let (shared, conn) = (Arc::clone(&shared), Arc::clone(&conn));
            async move { Ok::<_, Infallible>(handle(shared, conn, req).await) }
        })
    };
    let http =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    // Pinned here (not moved into `select!`) so that it, with the handler and response body in
    // it, is still alive when its error is looked at: the phase is then still accurate.
    let mut http = std::pin::pin!(http);
    tokio::select! {
        result = http.as_mut() => {
            if let Err(e) = result {
                connection_failed(&shared, &conn, &e);
            }
        }
        () = conn.end.notified() => {}
    }
}

/// Counts what a failed connection means: an unparsable request, or a request the client
/// stopped sending. A client that hung up while waiting for its answer is neither.
fn connection_failed(shared: &Shared, conn: &Connection, e: &hyper::Error) {
    if e.is_parse() {
        shared.protocol_error(e.to_string());
    } else if conn.advance(READING_BODY, COUNTED)
        || (e.is_incomplete_message() && conn.advance(IDLE, COUNTED))
    {
        shared.truncated.fetch_add(1, Ordering::SeqCst);
    }
}

/// One request: read the body, record, ask the script, carry out its reply.
async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Connection>,
    req: Request<Incoming>,
) -> Response<ReplyBody> {
    conn.phase.store(READING_BODY, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            if conn.advance(READING_BODY, COUNTED) {
                if e.is::<http_body_util::LengthLimitError>() {
                    shared.protocol_error(format!("request body over {MAX_REQUEST_BODY} bytes"));
                } else {
                    shared.truncated.fetch_add(1, Ordering::SeqCst);
                }
            }
            conn.end();
            return std::future::pending().await;
        }
    };
    let at = Instant::now();
    conn.phase.store(ANSWERING, Ordering::SeqCst);

    let signature_ok = shared
        .verifier(parts.uri.path())
        .is_some_and(|v| v.verify(&body, &parts.headers).is_ok());
    if !signature_ok {
        shared.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (seq, arrival_tick) = shared.arrive();
    let mut req = ReceivedRequest {
        seq,
        at,
        arrival_tick,
        id: header("webhook-id").to_owned(),
        timestamp: header("webhook-timestamp").parse().unwrap_or(0),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        method: parts.method,
        version: parts.version,
        headers: parts.headers,
        body,
        signature_ok,
        answer: Answer::Pending,
        label: None,
        answered: None,
    };
    let reply = ask(&shared, &req);
    req.answer = reply.answer;
    req.label = reply.label;
    shared.record(req);

    if !reply.delay.is_zero() {
        // Dropped here if the client hangs up meanwhile: the request then stays unanswered.
        pause(reply.delay).await;
    }
    match reply.answer {
        Answer::Status(code) => {
            let response = response(code, reply, Arc::clone(&conn));
            shared.answered(seq);
            return response;
        }
        Answer::Hang => {
            shared.answered(seq);
            tokio::time::sleep(reply.hang).await;
        }
        Answer::Reset => {
            // SO_LINGER 0: closing the socket sends RST instead of FIN.
            let _ = conn.socket.set_linger(Some(Duration::ZERO));
            shared.answered(seq);
        }
        Answer::Close | Answer::Pending => {
            let _ = conn.socket.shutdown(Shutdown::Write);
            shared.answered(seq);
        }
    }
    conn.end();
    std::future::pending().await
}

/// The script's reply; a panicking script answers 500 (and its panic is printed as usual).
fn ask(shared: &Shared, req: &ReceivedRequest) -> Reply {
    let script = shared
        .script
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    std::panic::catch_unwind(AssertUnwindSafe(|| script(req))).unwrap_or_else(|_| {
        Reply::status(500).with_body(format!(
            "the receiver's script panicked on request {}",
            req.seq
        ))
    })
}

fn response(code: u16, reply: Reply, conn: Arc<Connection>) -> Response<ReplyBody> {
    let mut response = Response::new(ReplyBody::new(&reply, conn));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) && !reply.body.is_empty() {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

/// Size of the blocks huge and endless bodies are sent in.
const BLOCK: usize = 64 * 1024;

/// A response body: `start` at once, then `left` bytes of filler, in blocks or trickled.
/// Its length is announced (`content-length`) unless it is endless (chunked).
struct ReplyBody {
    start: Bytes,
    left: u64,
    fill: Fill,
    trickle: Option<Trickle>,
    endless: bool,
    /// The connection: back to idle once the body is done with (dropped by hyper).
    conn: Arc<Connection>,
}

struct Trickle {
    piece: u64,
    every: Duration,
    next: Pin<Box<tokio::time::Sleep>>,
}

impl ReplyBody {
    fn new(reply: &Reply, conn: Arc<Connection>) -> ReplyBody {
        let start = reply.body.clone();
        let after_start = |total: u64| total.saturating_sub(start.len() as u64);
        let (left, trickle, endless) = match reply.shape {
            Shape::Whole => (0, None, false),
            Shape::Huge { total } => (after_start(total), None, false),
            Shape::Endless => (ENDLESS_CAP, None, true),
            Shape::Trickle { total, over } => {
                let left = after_start(total);
                let every = over / TRICKLE_PIECES;
                let trickle = Trickle {
                    piece: left.div_ceil(u64::from(TRICKLE_PIECES)).max(1),
                    every,
                    next: Box::pin(tokio::time::sleep(every)),
                };
                (left, Some(trickle), false)
            }
        };
        ReplyBody {
            start,
            left,
            fill: Fill::new(if left > 0 {
                reply.fill.clone()
            } else {
                Bytes::new()
            }),
            trickle,
            endless,
            conn,
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if !this.start.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.start)))));
        }
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = match &mut this.trickle {
            Some(t) => {
                ready!(t.next.as_mut().poll(cx));
                let deadline = tokio::time::Instant::now() + t.every;
                t.next.as_mut().reset(deadline);
                t.piece
            }
            None => BLOCK as u64,
        }
        .min(this.left);
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(this.fill.take(n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.start.is_empty() && self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.endless {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.start.len() as u64 + self.left)
        }
    }
}

impl Drop for ReplyBody {
    fn drop(&mut self) {
        // Unless the next request has begun meanwhile.
        self.conn.advance(ANSWERING, IDLE);
    }
}

/// Filler bytes: a pattern repeated, cut from a block of whole repetitions so that a
/// multi-byte pattern (e.g. "é") stays whole across pieces.
struct Fill {
    block: Bytes,
    at: usize,
}

impl Fill {
    fn new(pattern: Bytes) -> Fill {
        let block = if pattern.is_empty() {
            Bytes::new()
        } else {
            Bytes::from(pattern.repeat(BLOCK.div_ceil(pattern.len())))
        };
        Fill { block, at: 0 }
    }

    /// The next `n` bytes of the endless repetition.
    fn take(&mut self, n: usize) -> Bytes {
        if self.at + n <= self.block.len() {
            let piece = self.block.slice(self.at..self.at + n);
            self.at = (self.at + n) % self.block.len();
            return piece;
        }
        let mut piece = BytesMut::with_capacity(n);
        while piece.len() < n {
            let k = (n - piece.len()).min(self.block.len() - self.at);
            piece.extend_from_slice(&self.block[self.at..self.at + k]);
            self.at = (self.at + k) % self.block.len();
        }
        piece.freeze()
    }
}

/// Below this, a reply's delay is slept on a blocking thread: tokio's timer counts whole
/// milliseconds and rounds a deadline up to the next one, so `sleep(1 ms)` answers after 1 to
/// 2 ms (1.9 ms on average in the bench's hot lane), and a receiver said to answer in 1 ms
/// must answer in 1 ms.
const PRECISE_BELOW: Duration = Duration::from_millis(20);

/// Waits `d`: to the tenth of a millisecond when short, with tokio's timer otherwise.
async fn pause(d: Duration) {
    if d < PRECISE_BELOW {
        // A JoinError means the runtime is shutting down: nothing left to wait for.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(d)).await;
    } else {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_repeats_the_pattern_across_pieces() {
        let mut fill = Fill::new(Bytes::from_static("é".as_bytes()));
        let mut all = Vec::new();
        for n in [3, 1, BLOCK, 7, BLOCK + 5] {
            let piece = fill.take(n);
            assert_eq!(piece.len(), n);
            all.extend_from_slice(&piece);
        }
        assert_eq!(all, "é".repeat(all.len() / 2).into_bytes());
    }
}
