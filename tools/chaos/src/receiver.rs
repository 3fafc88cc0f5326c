//! Webhook receivers that misbehave on purpose.
//!
//! A minimal HTTP/1.1 server on a raw [`TcpListener`] (127.0.0.1:0), not axum: a connection
//! reset must really be a TCP RST in the middle of a request, and "answered" must mean the
//! moment the status line is written, which a framework hides. It understands what outboxd
//! sends (`POST` with `content-length`, keep-alive) and nothing more.
//!
//! Each receiver has a current [`Mode`] that [`flap`] changes every few seconds. Every request
//! is logged ([`Request`]): arrival order, webhook-id, the payload fields the checker needs,
//! whether the signature verifies (recomputed with the independent `standardwebhooks` crate), and how it was
//! answered, with a per-receiver sequence number taken under the log's lock, so "request B
//! arrived after request A was answered 2xx" is exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::clock;

/// How a receiver behaves for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// 200 at once.
    Ok,
    /// Mostly 200, with a sprinkle of every failure (per request).
    Mixed,
    /// 500.
    Error,
    /// 429 with `Retry-After: 1`.
    Throttle,
    /// Reads the request, answers nothing for longer than the request timeout, then closes.
    Hang,
    /// Reads the request, then resets the connection (RST, no answer).
    Reset,
    /// 200, but the status line comes late and the body trickles (sometimes past the timeout).
    Slow,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ok => "200",
            Mode::Mixed => "mixed",
            Mode::Error => "500",
            Mode::Throttle => "429+Retry-After",
            Mode::Hang => "hang",
            Mode::Reset => "reset",
            Mode::Slow => "slow",
        }
    }

    /// Modes counted as injected faults (Ok and Mixed are the background).
    pub fn is_fault(self) -> bool {
        !matches!(self, Mode::Ok | Mode::Mixed)
    }
}

/// How one request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet (still in the handler when the log was read).
    Pending,
    /// Status line written (for slow answers: the moment it was written).
    Status { code: u16, slow: bool },
    /// Never answered; the connection was closed after the client gave up.
    Hang,
    /// Connection reset without an answer.
    Reset,
}

impl Answer {
    pub fn is_2xx(self) -> bool {
        matches!(self, Answer::Status { code, .. } if (200..300).contains(&code))
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Receiver-local sequence number of the arrival.
    pub arrived_seq: u64,
    pub arrived_at: Duration,
    pub webhook_id: String,
    /// `webhook-timestamp` verified and one of the signatures matches.
    pub signature_ok: bool,
    /// The payload's own event id (`e`), to check that webhook-id is the event's id.
    pub payload_event: Option<String>,
    pub resource: Option<String>,
    pub seq: Option<i64>,
    pub answer: Answer,
    /// Receiver-local sequence number of the answer (same counter as arrivals).
    pub answered_seq: u64,
    pub answered_at: Duration,
    pub mode: Mode,
}

/// A receiver mode that was in force for a while.
#[derive(Debug, Clone)]
pub struct Phase {
    pub mode: Mode,
    pub start: Duration,
    pub end: Duration,
}

#[derive(Default)]
struct Log {
    counter: u64,
    requests: Vec<Request>,
}

impl Log {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

pub struct Receiver {
    pub name: String,
    pub port: u16,
    secret: standardwebhooks::Webhook,
    mode: Mutex<Mode>,
    log: Mutex<Log>,
    phases: Mutex<Vec<Phase>>,
    rng: Mutex<StdRng>,
    /// Requests that could not be parsed (and the first few reasons).
    pub protocol_errors: AtomicU64,
    pub protocol_error_examples: Mutex<Vec<String>>,
    /// Requests the client stopped sending half-way (a replica killed mid-request).
    pub truncated: AtomicU64,
    pub connections: AtomicU64,
}

/// What to do with one request.
enum Action {
    Respond {
        code: u16,
        retry_after: bool,
        head_delay: Duration,
        body_len: usize,
        body_time: Duration,
    },
    Hang(Duration),
    Reset,
}

impl Receiver {
    /// Binds 127.0.0.1:0 and serves until `stop`.
    pub async fn start(
        name: &str,
        secret: &str,
        seed: u64,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Receiver>> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("binding a receiver on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let rx = Arc::new(Receiver {
            name: name.to_owned(),
            port,
            secret: standardwebhooks::Webhook::new(secret)
                .map_err(|e| anyhow::anyhow!("receiver secret: {e:?}"))?,
            mode: Mutex::new(Mode::Ok),
            log: Mutex::new(Log::default()),
            phases: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            protocol_errors: AtomicU64::new(0),
            protocol_error_examples: Mutex::new(Vec::new()),
            truncated: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let accept = rx.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = stop.cancelled() => return,
                    c = listener.accept() => c,
                };
                match conn {
                    Ok((stream, _)) => {
                        accept.connections.fetch_add(1, Ordering::Relaxed);
                        let rx = accept.clone();
                        let stop = stop.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = rx.serve(stream) => {}
                            }
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Ok(rx)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook/{}", self.port, self.name)
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.log).requests.clone()
    }

    pub fn phases(&self) -> Vec<Phase> {
        lock(&self.phases).clone()
    }

    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    fn decide(&self, mode: Mode) -> Action {
        let mut rng = lock(&self.rng);
        let ok = Action::Respond {
            code: 200,
            retry_after: false,
            head_delay: Duration::ZERO,
            body_len: 2,
            body_time: Duration::ZERO,
        };
        let slow = |rng: &mut StdRng, past_timeout: bool| Action::Respond {
            code: 200,
            retry_after: false,
            head_delay: Duration::from_millis(rng.random_range(50..600)),
            body_len: 2000,
            body_time: if past_timeout {
                Duration::from_millis(rng.random_range(1200..2500))
            } else {
                Duration::from_millis(rng.random_range(100..700))
            },
        };
        let status = |code: u16| Action::Respond {
            code,
            retry_after: code == 429,
            head_delay: Duration::ZERO,
            body_len: 5,
            body_time: Duration::ZERO,
        };
        let hang =
            |rng: &mut StdRng| Action::Hang(Duration::from_millis(rng.random_range(1500..3000)));
        match mode {
            Mode::Ok => ok,
            Mode::Error => status(500),
            Mode::Throttle => status(429),
            Mode::Hang => hang(&mut rng),
            Mode::Reset => Action::Reset,
            Mode::Slow => {
                let past = rng.random_bool(0.25);
                slow(&mut rng, past)
            }
            Mode::Mixed => match rng.random_range(0..100) {
                0..62 => ok,
                62..70 => status(500),
                70..76 => status(429),
                76..82 => Action::Reset,
                82..90 => slow(&mut rng, false),
                90..94 => slow(&mut rng, true),
                94..97 => status(503),
                _ => hang(&mut rng),
            },
        }
    }

    /// Serves one connection: requests in sequence (keep-alive) until the client closes or a
    /// behaviour ends the connection.
    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        loop {
            let request = match read_request(&mut stream, &mut buf).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(ReadError::Truncated) => {
                    self.truncated.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(ReadError::Malformed(why)) => {
                    self.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    let mut examples = lock(&self.protocol_error_examples);
                    if examples.len() < 5 {
                        examples.push(why);
                    }
                    return;
                }
            };
            if !self.handle(&mut stream, request).await {
                return;
            }
        }
    }

    /// Logs and answers one request; `false` when the connection must end.
    async fn handle(&self, stream: &mut TcpStream, req: RawRequest) -> bool {
        let mode = self.mode();
        let action = self.decide(mode);
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let webhook_id = header("webhook-id").unwrap_or("").to_owned();
        let signature_ok = self.verify(
            &webhook_id,
            header("webhook-timestamp"),
            header("webhook-signature"),
            &req.body,
        );
        let payload: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let index = {
            let mut log = lock(&self.log);
            let arrived_seq = log.next();
            log.requests.push(Request {
                arrived_seq,
                arrived_at: clock::now(),
                webhook_id,
                signature_ok,
                payload_event: payload["e"].as_str().map(str::to_owned),
                resource: payload["r"].as_str().map(str::to_owned),
                seq: payload["seq"].as_i64(),
                answer: Answer::Pending,
                answered_seq: 0,
                answered_at: Duration::ZERO,
                mode,
            });
            log.requests.len() - 1
        };
        let record = |answer: Answer| {
            let mut log = lock(&self.log);
            let seq = log.next();
            if let Some(r) = log.requests.get_mut(index) {
                r.answer = answer;
                r.answered_seq = seq;
                r.answered_at = clock::now();
            }
        };
        match action {
            Action::Reset => {
                record(Answer::Reset);
                // SO_LINGER 0: closing sends RST instead of FIN.
                let _ = stream.set_zero_linger();
                false
            }
            Action::Hang(d) => {
                record(Answer::Hang);
                tokio::time::sleep(d).await;
                false
            }
            Action::Respond {
                code,
                retry_after,
                head_delay,
                body_len,
                body_time,
            } => {
                if !head_delay.is_zero() {
                    tokio::time::sleep(head_delay).await;
                }
                let reason = match code {
                    200 => "OK",
                    429 => "Too Many Requests",
                    500 => "Internal Server Error",
                    503 => "Service Unavailable",
                    _ => "Whatever",
                };
                let mut head = format!(
                    "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {body_len}\r\n"
                );
                if retry_after {
                    head.push_str("retry-after: 1\r\n");
                }
                head.push_str("\r\n");
                record(Answer::Status {
                    code,
                    slow: !head_delay.is_zero() || !body_time.is_zero(),
                });
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return false;
                }
                if body_time.is_zero() {
                    let body = vec![b'k'; body_len];
                    return stream.write_all(&body).await.is_ok();
                }
                // Trickle the body in 20 pieces.
                let pieces = 20;
                let piece = body_len.div_ceil(pieces);
                let mut sent = 0;
                while sent < body_len {
                    tokio::time::sleep(body_time / pieces as u32).await;
                    let n = piece.min(body_len - sent);
                    if stream.write_all(&vec![b's'; n]).await.is_err() {
                        return false;
                    }
                    sent += n;
                }
                true
            }
        }
    }

    fn verify(&self, id: &str, ts: Option<&str>, sigs: Option<&str>, body: &[u8]) -> bool {
        let (Some(ts), Some(sigs)) = (ts, sigs) else {
            return false;
        };
        let Ok(ts) = ts.parse::<i64>() else {
            return false;
        };
        if (ts - chrono::Utc::now().timestamp()).abs() > 300 {
            return false;
        }
        let Ok(expected) = self.secret.sign(id, ts, body) else {
            return false;
        };
        sigs.split(' ').any(|s| s == expected)
    }
}

/// Changes `rx`'s mode every few seconds until `stop`; then leaves it at [`Mode::Ok`].
pub async fn flap(rx: Arc<Receiver>, seed: u64, stop: CancellationToken) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut current = Mode::Ok;
    let mut since = clock::now();
    loop {
        let (mode, secs) = match rng.random_range(0..100) {
            0..30 => (Mode::Ok, rng.random_range(2.0..5.0)),
            30..55 => (Mode::Mixed, rng.random_range(2.0..5.0)),
            55..64 => (Mode::Error, rng.random_range(1.0..3.5)),
            64..72 => (Mode::Throttle, rng.random_range(1.0..3.5)),
            72..80 => (Mode::Hang, rng.random_range(1.0..3.0)),
            80..90 => (Mode::Reset, rng.random_range(1.0..3.0)),
            _ => (Mode::Slow, rng.random_range(1.5..4.0)),
        };
        rx.set_mode(mode);
        let now = clock::now();
        if now > since {
            lock(&rx.phases).push(Phase {
                mode: current,
                start: since,
                end: now,
            });
        }
        current = mode;
        since = now;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
        }
    }
    rx.set_mode(Mode::Ok);
    let now = clock::now();
    lock(&rx.phases).push(Phase {
        mode: current,
        start: since,
        end: now,
    });
}

struct RawRequest {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

enum ReadError {
    /// The connection ended (or failed) in the middle of a request.
    Truncated,
    /// Not a request this receiver understands.
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> ReadError {
    ReadError::Malformed(what.into())
}

/// Reads one request (head + content-length body) from `stream`, using and keeping leftover
/// bytes in `buf`. `Ok(None)`: the client closed the connection between requests.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<RawRequest>, ReadError> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(malformed("request head too large"));
        }
        match stream.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(ReadError::Truncated),
            Ok(_) => {}
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    if !request_line.starts_with("POST ") {
        return Err(malformed(format!("request line {request_line:?}")));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("header line without ':'"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v != "identity")
    {
        return Err(malformed("chunked request bodies are not supported"));
    }
    let len: usize = match headers.iter().find(|(n, _)| n == "content-length") {
        Some((_, v)) => v.parse().map_err(|_| malformed("bad content-length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(malformed("request body too large"));
    }
    while buf.len() < head_end + len {
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(ReadError::Truncated),
            Ok(_) => {}
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some(RawRequest { headers, body }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Locks a mutex, ignoring poisoning (a panicking handler must not take the log down).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
