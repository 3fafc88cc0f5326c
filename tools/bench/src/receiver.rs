//! The in-process webhook receiver: an axum (hyper) HTTP/1.1 server on 127.0.0.1 with one path
//! per endpoint (`/ep/<index>`). For every request it recomputes the Standard Webhooks v1
//! signature with the endpoint's secret, parses the payload `{"n": event number, "k": resource
//! key, "s": per-resource sequence, ...}`, counts duplicates (same event twice at the same
//! endpoint), checks per-resource order (for each endpoint and key the sequence numbers must
//! arrive increasing) and logs the first arrival of each event with its receive instant, so
//! latency (receive − commit, both on this process's monotonic clock) and throughput windows
//! are computed afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde::Deserialize;
use standardwebhooks::Webhook as Secret;
use tokio_util::sync::CancellationToken;

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 204 at once.
    Ok,
    /// Sleeps this long (longer than the sidecar's request timeout), then 204.
    Hang(Duration),
    /// 500 at once.
    Fail,
}

/// One endpoint as the bench sees it.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub name: String,
    /// `whsec_…`, set on the endpoint with `outbox.add_endpoint(…, secret)`.
    pub secret: String,
    /// Subscribed event types (bit i = workload type i).
    pub type_mask: u32,
    /// Patterns given to `add_endpoint` (derived from `type_mask` unless overridden).
    pub patterns: Vec<String>,
    /// Tenant index in the workload's tenant list.
    pub tenant: u8,
    pub behaviour: Behaviour,
    /// Its deliveries are expected and counted (healthy endpoints).
    pub tracked: bool,
    /// `outbox.endpoints.id` once registered.
    pub db_id: Option<i64>,
}

/// First arrival of an event at a tracked endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// Nanoseconds since the receiver's base instant.
    pub t_ns: u64,
    pub n: u32,
    pub key: u32,
    pub ep: u16,
}

/// Commit instants of published events (nanoseconds since `base`, 0 = not committed yet).
pub struct CommitLog {
    pub base: Instant,
    t: Vec<AtomicU64>,
}

impl CommitLog {
    pub fn new(base: Instant, events: usize) -> CommitLog {
        CommitLog {
            base,
            t: (0..events).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    pub fn set(&self, n: usize, t_ns: u64) {
        if let Some(slot) = self.t.get(n) {
            slot.store(t_ns, Ordering::Relaxed);
        }
    }

    pub fn get(&self, n: usize) -> Option<u64> {
        match self.t.get(n).map(|a| a.load(Ordering::Relaxed)) {
            Some(0) | None => None,
            Some(t) => Some(t),
        }
    }
}

#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicU64,
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub bad_payloads: AtomicU64,
    pub order_violations: AtomicU64,
}

struct Slot {
    spec: EndpointSpec,
    secret: Secret,
    seen: Vec<AtomicU64>,
    last_seq: Vec<AtomicU32>,
    c: Counters,
}

/// Shared receiver state.
pub struct RecvState {
    base: Instant,
    slots: Vec<Slot>,
    arrivals: Mutex<Vec<Arrival>>,
    /// Unique deliveries received at tracked endpoints.
    pub tracked_unique: AtomicU64,
    unknown_paths: AtomicU64,
    violations: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct Payload {
    n: u64,
    k: u32,
    s: u64,
}

impl RecvState {
    pub fn counters(&self, ep: usize) -> Option<&Counters> {
        self.slots.get(ep).map(|s| &s.c)
    }

    pub fn unknown_paths(&self) -> u64 {
        self.unknown_paths.load(Ordering::Relaxed)
    }

    /// Totals over all endpoints (tracked or not).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in &self.slots {
            t.requests += s.c.requests.load(Ordering::Relaxed);
            t.duplicates += s.c.duplicates.load(Ordering::Relaxed);
            t.bad_signatures += s.c.bad_signatures.load(Ordering::Relaxed);
            t.bad_payloads += s.c.bad_payloads.load(Ordering::Relaxed);
            t.order_violations += s.c.order_violations.load(Ordering::Relaxed);
        }
        t.unknown_paths = self.unknown_paths();
        t
    }

    /// The first violations seen (for the report and a reproduction).
    pub fn violation_samples(&self) -> Vec<String> {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn take_arrivals(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.arrivals.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Was event `n` received at endpoint `ep`?
    pub fn seen(&self, ep: usize, n: usize) -> bool {
        self.slots.get(ep).is_some_and(|s| {
            s.seen
                .get(n / 64)
                .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (n % 64)) != 0)
        })
    }

    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn record_violation(&self, msg: String) {
        let mut v = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() < 20 {
            v.push(msg);
        }
    }

    fn handle(&self, ep: usize, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let t_ns = self.now_ns();
        let Some(slot) = self.slots.get(ep) else {
            self.unknown_paths.fetch_add(1, Ordering::Relaxed);
            return StatusCode::NOT_FOUND;
        };
        slot.c.requests.fetch_add(1, Ordering::Relaxed);
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (id, ts, sig) = (
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
        );
        let expected = slot
            .secret
            .sign(id, ts.parse().unwrap_or(0), body)
            .unwrap_or_default();
        if id.is_empty() || !sig.split(' ').any(|c| c == expected) {
            slot.c.bad_signatures.fetch_add(1, Ordering::Relaxed);
            self.record_violation(format!(
                "bad signature at endpoint {} for webhook-id {id:?}",
                slot.spec.name
            ));
            return StatusCode::UNAUTHORIZED;
        }
        let p: Payload = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(_) => {
                slot.c.bad_payloads.fetch_add(1, Ordering::Relaxed);
                return StatusCode::BAD_REQUEST;
            }
        };
        match slot.spec.behaviour {
            Behaviour::Ok => {}
            Behaviour::Fail => return StatusCode::INTERNAL_SERVER_ERROR,
            // Hang is handled by the async caller.
            Behaviour::Hang(_) => return StatusCode::NO_CONTENT,
        }
        let n = p.n as usize;
        let Some(word) = slot.seen.get(n / 64) else {
            slot.c.bad_payloads.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST;
        };
        let bit = 1u64 << (n % 64);
        if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            slot.c.duplicates.fetch_add(1, Ordering::Relaxed);
            return StatusCode::NO_CONTENT;
        }
        slot.c.unique.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = slot.last_seq.get(p.k as usize) {
            let s = p.s.min(u32::MAX as u64) as u32;
            let prev = last.fetch_max(s, Ordering::Relaxed);
            if prev >= s {
                slot.c.order_violations.fetch_add(1, Ordering::Relaxed);
                self.record_violation(format!(
                    "order violation at endpoint {}: key {} seq {} (event n={n}, webhook-id {id}) arrived after seq {prev}",
                    slot.spec.name, p.k, s
                ));
            }
        }
        if slot.spec.tracked {
            self.tracked_unique.fetch_add(1, Ordering::Relaxed);
            self.arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arrival {
                    t_ns,
                    n: n as u32,
                    key: p.k,
                    ep: ep as u16,
                });
        }
        StatusCode::NO_CONTENT
    }
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Totals {
    pub requests: u64,
    pub duplicates: u64,
    pub bad_signatures: u64,
    pub bad_payloads: u64,
    pub order_violations: u64,
    pub unknown_paths: u64,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<RecvState>,
    stop: CancellationToken,
}

impl Receiver {
    /// Starts a receiver for `specs`, expecting event numbers `< max_events` and keys
    /// `< keys`. `base` is the clock shared with the producers' [`CommitLog`].
    pub async fn start(
        specs: Vec<EndpointSpec>,
        max_events: usize,
        keys: usize,
        base: Instant,
    ) -> anyhow::Result<Receiver> {
        let mut slots = Vec::with_capacity(specs.len());
        for spec in specs {
            let secret = Secret::new(&spec.secret)
                .map_err(|e| anyhow::anyhow!("endpoint {}: {e}", spec.name))?;
            slots.push(Slot {
                spec,
                secret,
                seen: (0..max_events.div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                last_seq: (0..keys).map(|_| AtomicU32::new(0)).collect(),
                c: Counters::default(),
            });
        }
        let state = Arc::new(RecvState {
            base,
            slots,
            arrivals: Mutex::new(Vec::new()),
            tracked_unique: AtomicU64::new(0),
            unknown_paths: AtomicU64::new(0),
            violations: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the receiver")?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/ep/{idx}", post(handle))
            .with_state(Arc::clone(&state));
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await;
        });
        Ok(Receiver { addr, state, stop })
    }

    pub fn url(&self, ep: usize) -> String {
        format!("http://{}/ep/{ep}", self.addr)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(
    State(state): State<Arc<RecvState>>,
    Path(idx): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = state.handle(idx, &headers, &body);
    if let Some(Behaviour::Hang(d)) = state.slots.get(idx).map(|s| s.spec.behaviour) {
        tokio::time::sleep(d).await;
    }
    status
}

/// A fresh random `whsec_` secret.
pub fn new_secret() -> String {
    use base64::Engine as _;
    use rand::RngExt;
    let key: [u8; 32] = rand::rng().random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(secret: &Secret, id: &str, body: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ts = 1_700_000_000i64;
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert(
            "webhook-signature",
            secret
                .sign(id, ts, body.as_bytes())
                .unwrap()
                .parse()
                .unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn counts_order_violations_duplicates_and_bad_signatures() {
        let spec = EndpointSpec {
            name: "t".into(),
            secret: new_secret(),
            type_mask: 1,
            patterns: vec!["*".into()],
            tenant: 0,
            behaviour: Behaviour::Ok,
            tracked: true,
            db_id: None,
        };
        let secret = Secret::new(&spec.secret).unwrap();
        let r = Receiver::start(vec![spec], 10, 2, Instant::now())
            .await
            .unwrap();
        let st = &r.state;
        let body = |n: u32, k: u32, s: u32| format!(r#"{{"n":{n},"k":{k},"s":{s},"t":0}}"#);
        let send = |n: u32, k: u32, s: u32| {
            let b = body(n, k, s);
            st.handle(0, &request(&secret, &format!("evt_{n}"), &b), b.as_bytes())
        };
        assert_eq!(send(0, 0, 1), StatusCode::NO_CONTENT);
        assert_eq!(send(1, 0, 3), StatusCode::NO_CONTENT); // gaps are fine
        assert_eq!(send(2, 1, 1), StatusCode::NO_CONTENT); // other key
        send(1, 0, 3); // duplicate, not a violation
        send(3, 0, 2); // seq 2 after 3: violation
        let c = st.counters(0).unwrap();
        assert_eq!(c.unique.load(Ordering::Relaxed), 4);
        assert_eq!(c.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(c.order_violations.load(Ordering::Relaxed), 1);
        assert!(st.seen(0, 3) && !st.seen(0, 4));

        let other = Secret::new(&new_secret()).unwrap();
        let b = body(4, 0, 9);
        assert_eq!(
            st.handle(0, &request(&other, "evt_4", &b), b.as_bytes()),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(c.bad_signatures.load(Ordering::Relaxed), 1);
        assert_eq!(st.take_arrivals().len(), 4);
    }
}
