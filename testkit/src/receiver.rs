//! The one webhook receiver: a real HTTP/1.1 server on 127.0.0.1 for tests, the benchmark and
//! the chaos soak.
//!
//! Built on hyper's HTTP/1 connection directly (not a framework) because some answers are about
//! the TCP connection, not HTTP: a [`Reply::reset`] must be a real RST (SO_LINGER 0 on the
//! socket, then close), a [`Reply::close`] a FIN without a response, a [`Reply::hang`] a
//! request read and never answered. Bodies can trickle, be huge or never end.
//!
//! * **Signatures** are checked with the independent `standardwebhooks` crate, with a default
//!   secret and/or one secret per path (the bench has thousands of endpoints at `/ep/<i>`,
//!   each with its own secret). A missing secret means `signature_ok = false`.
//! * **A [`Script`]** chooses each [`Reply`]; it sees the whole request (with its 0-based
//!   arrival number) and can be replaced while the receiver runs.
//! * **Recording**: by default every request is kept in full ([`ReceivedRequest`]), with its
//!   arrival and the moment it was answered stamped by ONE counter under one lock (ticks), so
//!   "B arrived after A was answered" is exact. [`ReceiverBuilder::record`]`(false)` keeps
//!   only counters (the bench sends millions of requests; its script does its own counting).
//! * **Waiting** without sleeps: [`Receiver::wait_for`] re-checks a predicate on every arrival
//!   and every answer (a watch channel).
//! * **Counters** ([`Counters`]): requests, connections, requests cut off by the client,
//!   unparsable requests (with example messages), bad signatures.
//!
//! It stops when dropped (or [`Receiver::stop`]ped): the listener and every connection task go.

mod reply;
mod serve;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Version};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use reply::{Answer, ENDLESS_CAP, Reply, Script, always, behaviour, script, sequence};

/// One request the [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// 0-based arrival number (what [`behaviour`] passes as its `u64`).
    pub seq: u64,
    /// When the request (head and body) had arrived.
    pub at: Instant,
    /// The receiver's clock when it arrived: arrivals and answers take ticks from one counter
    /// under one lock, so `a.answered.tick < b.arrival_tick` means b arrived after a was
    /// answered.
    pub arrival_tick: u64,
    pub method: Method,
    /// Path and query, e.g. `/hook?x=1`.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `webhook-id` ("" if missing).
    pub id: String,
    /// `webhook-timestamp` (0 if missing or not a number).
    pub timestamp: i64,
    /// The `standardwebhooks` crate accepted the signature with the path's secret (this also
    /// checks the timestamp is within 5 minutes of now).
    pub signature_ok: bool,
    /// What the script chose.
    pub answer: Answer,
    /// The chosen reply's [`label`](Reply::label).
    pub label: Option<&'static str>,
    /// When the answer was given: the response handed to the HTTP connection, the reset or
    /// close done, the hang begun. `None` while a delay runs, and for good if the client hung
    /// up first.
    pub answered: Option<Answered>,
}

impl ReceivedRequest {
    /// The status the script chose, if it chose one.
    pub fn status(&self) -> Option<u16> {
        self.answer.status()
    }

    /// The script chose a 2xx status.
    pub fn is_2xx(&self) -> bool {
        self.answer.is_2xx()
    }

    /// The answer was given (see [`answered`](ReceivedRequest::answered)).
    pub fn completed(&self) -> bool {
        self.answered.is_some()
    }
}

/// When a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// The receiver's clock (see [`ReceivedRequest::arrival_tick`]).
    ///
    /// Taken when the response is handed to the connection, before its bytes are written.
    /// Early rather than late on purpose: a check such as "B must not arrive before A was
    /// answered 2xx" then flags B only if it arrived before A's answer could have left, so
    /// every violation it reports is real (it may miss one inside a microsecond window).
    pub tick: u64,
    pub at: Instant,
}

/// What the receiver has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests read in full (recorded or not).
    pub requests: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Requests the client stopped sending half-way (e.g. a sidecar killed mid-request).
    pub truncated: u64,
    /// Requests that were not HTTP/1.1 the receiver could parse (e.g. TLS spoken to it).
    pub protocol_errors: u64,
    /// Requests whose signature did not verify.
    pub bad_signatures: u64,
}

/// A running receiver; see the [module docs](self).
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    /// The accept loop; it owns every connection's task.
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How to start a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    default_secret: Option<standardwebhooks::Webhook>,
    path_secrets: HashMap<String, standardwebhooks::Webhook>,
    script: Script,
    record: bool,
}

impl ReceiverBuilder {
    /// The secret (`whsec_…`) signatures are checked with on every path without one of its own.
    pub fn secret(mut self, secret: &str) -> Self {
        self.default_secret = Some(webhook(secret));
        self
    }

    /// The secret for requests to `path` (without the query), e.g. `/ep/7`.
    pub fn path_secret(mut self, path: &str, secret: &str) -> Self {
        self.path_secrets.insert(path.to_owned(), webhook(secret));
        self
    }

    /// The script answering requests (default: `200` to everything).
    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    /// Keep every request (default), or only count them: memory then stays bounded however
    /// many requests come, and [`Receiver::requests`] stays empty.
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Binds 127.0.0.1:0 and serves. Panics if it cannot bind: nothing a test or an instrument
    /// could do about that.
    pub async fn start(self) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the receiver on 127.0.0.1");
        let addr = listener.local_addr().expect("the receiver's address");
        let shared = Arc::new(Shared {
            default_secret: self.default_secret,
            path_secrets: self.path_secrets,
            script: RwLock::new(self.script),
            record: self.record,
            clock: Mutex::new(Clock::default()),
            log: Mutex::new(Log::default()),
            changes: watch::Sender::new(0),
            connections: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            protocol_error_examples: Mutex::new(Vec::new()),
            probes: Mutex::new(HashMap::new()),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve::accept_loop(
            listener,
            Arc::clone(&shared),
            stop.clone(),
        ));
        Receiver {
            addr,
            shared,
            stop,
            task: Some(task),
        }
    }
}

fn webhook(secret: &str) -> standardwebhooks::Webhook {
    standardwebhooks::Webhook::new(secret).unwrap_or_else(|e| panic!("bad receiver secret: {e:?}"))
}

impl Receiver {
    /// A receiver to configure: no secret, `200` to everything, recording on.
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder {
            default_secret: None,
            path_secrets: HashMap::new(),
            script: always(Reply::ok()),
            record: true,
        }
    }

    /// A recording receiver checking signatures with `secret` (a `whsec_…` string) and
    /// answering as `script` says.
    pub async fn start(secret: &str, script: Script) -> Receiver {
        Receiver::builder()
            .secret(secret)
            .script(script)
            .start()
            .await
    }

    /// A receiver answering `200` to everything.
    pub async fn ok(secret: &str) -> Receiver {
        Receiver::start(secret, always(Reply::ok())).await
    }

    /// Replaces the script for requests arriving from now on.
    pub fn set_script(&self, script: Script) {
        *self
            .shared
            .script
            .write()
            .unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// [`set_script`](Receiver::set_script) under the name the tests use.
    pub fn set_behaviour(&self, script: Script) {
        self.set_script(script);
    }

    /// `http://127.0.0.1:<port>/hook`
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every recorded request so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.log().requests.clone()
    }

    /// Requests since the start or the last [`clear`](Receiver::clear) (recorded or not).
    pub fn count(&self) -> usize {
        self.shared.count()
    }

    /// Forgets the recorded requests; [`count`](Receiver::count) starts again from 0 (the
    /// arrival numbers and the counters go on).
    pub fn clear(&self) {
        {
            let arrivals = self.shared.clock().arrivals;
            let mut log = self.shared.log();
            log.requests.clear();
            log.count_from = arrivals;
        }
        self.shared.changed();
    }

    /// Waits (without polling) until at least `n` requests have arrived; false on timeout.
    pub async fn wait_for_count(&self, n: usize, deadline: Duration) -> bool {
        self.wait_until(deadline, || self.count() >= n).await
    }

    /// Waits until `pred` holds for the recorded requests, re-checking on every new request
    /// or answer; false on timeout. (Without recording, `pred` sees no requests.)
    pub async fn wait_for(
        &self,
        deadline: Duration,
        mut pred: impl FnMut(&[ReceivedRequest]) -> bool,
    ) -> bool {
        self.wait_until(deadline, || pred(&self.shared.log().requests))
            .await
    }

    async fn wait_until(&self, deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
        let mut changes = self.shared.changes.subscribe();
        let wait = async {
            loop {
                if done() {
                    return true;
                }
                if changes.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(deadline, wait).await.unwrap_or(false)
    }

    /// webhook-id → number of requests answered 2xx (and completed).
    pub fn successes_by_id(&self) -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for r in self.shared.log().requests.iter() {
            if r.completed() && r.is_2xx() {
                *map.entry(r.id.clone()).or_insert(0) += 1;
            }
        }
        map
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            requests: s.clock().arrivals,
            connections: s.connections.load(Ordering::SeqCst),
            truncated: s.truncated.load(Ordering::SeqCst),
            protocol_errors: s.protocol_errors.load(Ordering::SeqCst),
            bad_signatures: s.bad_signatures.load(Ordering::SeqCst),
        }
    }

    /// Connections still open (their task still running): 0 once clients are gone and the
    /// receiver has noticed. Re-checked by [`wait_for`](Receiver::wait_for) waiters too.
    pub fn open_connections(&self) -> u64 {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// Waits until at most `n` connections are open; false on timeout.
    pub async fn wait_for_open_connections(&self, n: u64, deadline: Duration) -> bool {
        self.wait_until(deadline, || self.open_connections() <= n)
            .await
    }

    /// What the first few unparsable requests were (hyper's words).
    pub fn protocol_error_examples(&self) -> Vec<String> {
        lock(&self.shared.protocol_error_examples).clone()
    }

    /// Connections accepted, counting every connection any client opened before this call —
    /// also those the accept loop has not reached yet: a probe connection is queued behind
    /// them and this returns once the receiver has accepted it (the probe is not counted). So
    /// "nothing connected" can be asserted exactly, without sleeping.
    pub async fn connections_so_far(&self) -> u64 {
        let probe = tokio::net::TcpSocket::new_v4().expect("a probe socket");
        probe
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("binding the probe");
        let local = probe.local_addr().expect("the probe's address");
        let (accepted, seen) = oneshot::channel();
        lock(&self.shared.probes).insert(local, accepted);
        let stream = probe.connect(self.addr).await.expect("the probe connects");
        tokio::time::timeout(Duration::from_secs(10), seen)
            .await
            .expect("the receiver did not accept the probe within 10 s")
            .expect("the receiver stopped");
        drop(stream);
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting, and ends every connection; returns once all its tasks are gone.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
        // Aborting the accept loop drops its JoinSet, which aborts every connection's task.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The receiver's clock: arrival numbers and the ticks arrivals and answers take.
#[derive(Default)]
struct Clock {
    arrivals: u64,
    ticks: u64,
}

#[derive(Default)]
struct Log {
    /// Recorded requests, sorted by `seq`.
    requests: Vec<ReceivedRequest>,
    /// `count()` counts arrivals from this one on (set by `clear()`).
    count_from: u64,
}

/// What the receiver's handle and its connection tasks share.
struct Shared {
    default_secret: Option<standardwebhooks::Webhook>,
    path_secrets: HashMap<String, standardwebhooks::Webhook>,
    script: RwLock<Script>,
    record: bool,
    clock: Mutex<Clock>,
    log: Mutex<Log>,
    /// Bumped on every arrival and answer; waiters re-check then.
    changes: watch::Sender<u64>,
    connections: AtomicU64,
    /// Connections whose task is still running.
    open_connections: AtomicU64,
    truncated: AtomicU64,
    protocol_errors: AtomicU64,
    bad_signatures: AtomicU64,
    protocol_error_examples: Mutex<Vec<String>>,
    /// Probe connections of [`Receiver::connections_so_far`], by their address.
    probes: Mutex<HashMap<SocketAddr, oneshot::Sender<()>>>,
}

/// How many protocol errors are kept as examples.
const EXAMPLES: usize = 5;

impl Shared {
    fn clock(&self) -> MutexGuard<'_, Clock> {
        lock(&self.clock)
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn count(&self) -> usize {
        let log = self.log();
        if self.record {
            log.requests.len()
        } else {
            (self.clock().arrivals - log.count_from) as usize
        }
    }

    fn verifier(&self, path: &str) -> Option<&standardwebhooks::Webhook> {
        self.path_secrets.get(path).or(self.default_secret.as_ref())
    }

    /// The next arrival number and tick.
    fn arrive(&self) -> (u64, u64) {
        let mut clock = self.clock();
        let seq = clock.arrivals;
        let tick = clock.ticks;
        clock.arrivals += 1;
        clock.ticks += 1;
        (seq, tick)
    }

    /// Records a request the script has answered (or only announces it, without recording).
    fn record(&self, req: ReceivedRequest) {
        if self.record {
            let mut log = self.log();
            // Scripts run concurrently; keep the log in arrival order all the same.
            let at = log.requests.partition_point(|r| r.seq < req.seq);
            log.requests.insert(at, req);
        }
        self.changed();
    }

    /// Stamps request `seq` answered, now.
    fn answered(&self, seq: u64) {
        let tick = {
            let mut clock = self.clock();
            clock.ticks += 1;
            clock.ticks - 1
        };
        let at = Instant::now();
        if self.record {
            let mut log = self.log();
            if let Ok(i) = log.requests.binary_search_by_key(&seq, |r| r.seq) {
                log.requests[i].answered = Some(Answered { tick, at });
            }
        }
        self.changed();
    }

    fn protocol_error(&self, what: String) {
        self.protocol_errors.fetch_add(1, Ordering::SeqCst);
        let mut examples = lock(&self.protocol_error_examples);
        if examples.len() < EXAMPLES {
            examples.push(what);
        }
    }

    /// Whether `peer` is a probe of [`Receiver::connections_so_far`] (which is then told).
    fn is_probe(&self, peer: SocketAddr) -> bool {
        match lock(&self.probes).remove(&peer) {
            Some(seen) => {
                let _ = seen.send(());
                true
            }
            None => false,
        }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking script must not take the receiver down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
