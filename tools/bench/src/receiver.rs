//! The bench's side of the webhook receiver. The server is the test kit's
//! ([`testkit::Receiver`]: hyper HTTP/1.1 on 127.0.0.1, Standard Webhooks signatures checked
//! with each endpoint's own secret at its path `/ep/<index>`, recording off so memory stays
//! bounded over millions of requests). What the bench adds is its script, [`RecvState`]: for
//! every request it parses the payload `{"n": event number, "k": resource key, "s":
//! per-resource sequence, ...}`, counts duplicates (same event twice at the same endpoint),
//! checks per-resource order (for each endpoint and key the sequence numbers must arrive
//! increasing), logs the first arrival of each event at a tracked endpoint with its receive
//! instant on the producers' clock (so latency, receive − commit, and throughput windows are
//! computed afterwards), and answers as the endpoint's [`Behaviour`] says.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use testkit::{ReceivedRequest, Reply};

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 204 at once.
    Ok,
    /// Waits this long (longer than the sidecar's request timeout), then 204.
    Hang(Duration),
    /// 500 at once.
    Fail,
    /// Counted like `Ok`, answered 204 after this delay (a receiver doing a little work: the
    /// hot lane scenario).
    Slow(Duration),
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

/// What one endpoint received.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicU64,
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    pub bad_signatures: AtomicU64,
    pub bad_payloads: AtomicU64,
    pub order_violations: AtomicU64,
}

/// One endpoint's bookkeeping.
struct Slot {
    spec: EndpointSpec,
    /// Bit n: event n arrived here.
    seen: Vec<AtomicU64>,
    /// Per key: the highest sequence number that arrived here.
    last_seq: Vec<AtomicU32>,
    c: Counters,
}

/// The script's state: every endpoint's bookkeeping and the arrival log. Shared by the
/// receiver's connection tasks (which call [`RecvState::answer`]) and the run that reads it.
pub struct RecvState {
    /// Time zero of the arrival log: the producers' [`CommitLog::base`].
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
    fn new(specs: Vec<EndpointSpec>, max_events: usize, keys: usize, base: Instant) -> RecvState {
        let slots = specs
            .into_iter()
            .map(|spec| Slot {
                spec,
                seen: (0..max_events.div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                last_seq: (0..keys).map(|_| AtomicU32::new(0)).collect(),
                c: Counters::default(),
            })
            .collect();
        RecvState {
            base,
            slots,
            arrivals: Mutex::new(Vec::new()),
            tracked_unique: AtomicU64::new(0),
            unknown_paths: AtomicU64::new(0),
            violations: Mutex::new(Vec::new()),
        }
    }

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

    /// The script: counts the request and answers as its endpoint behaves (a hanging
    /// endpoint answers whatever it answers only after its delay).
    fn answer(&self, req: &ReceivedRequest) -> Reply {
        // When the request had arrived (before the signature was checked), on our clock.
        let t_ns = req.at.saturating_duration_since(self.base).as_nanos() as u64 + 1;
        let ep = endpoint_index(&req.path);
        let status = self.count(ep, &req.id, req.signature_ok, &req.body, t_ns);
        let reply = Reply::status(status);
        match ep.and_then(|i| self.slots.get(i)).map(|s| s.spec.behaviour) {
            Some(Behaviour::Hang(d) | Behaviour::Slow(d)) => reply.with_delay(d),
            _ => reply,
        }
    }

    /// Counts one request to endpoint `ep` (`None`: a path that is none of ours) that arrived
    /// at `t_ns`, whose signature the receiver checked; returns the status to answer.
    fn count(
        &self,
        ep: Option<usize>,
        id: &str,
        signature_ok: bool,
        body: &[u8],
        t_ns: u64,
    ) -> u16 {
        let Some((ep, slot)) = ep.and_then(|i| Some((i, self.slots.get(i)?))) else {
            self.unknown_paths.fetch_add(1, Ordering::Relaxed);
            return 404;
        };
        slot.c.requests.fetch_add(1, Ordering::Relaxed);
        if id.is_empty() || !signature_ok {
            slot.c.bad_signatures.fetch_add(1, Ordering::Relaxed);
            self.record_violation(format!(
                "bad signature at endpoint {} for webhook-id {id:?}",
                slot.spec.name
            ));
            return 401;
        }
        let p: Payload = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(_) => {
                slot.c.bad_payloads.fetch_add(1, Ordering::Relaxed);
                return 400;
            }
        };
        match slot.spec.behaviour {
            Behaviour::Ok | Behaviour::Slow(_) => {}
            Behaviour::Fail => return 500,
            // The delay is the reply's (see `answer`).
            Behaviour::Hang(_) => return 204,
        }
        let n = p.n as usize;
        let Some(word) = slot.seen.get(n / 64) else {
            slot.c.bad_payloads.fetch_add(1, Ordering::Relaxed);
            return 400;
        };
        let bit = 1u64 << (n % 64);
        if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            slot.c.duplicates.fetch_add(1, Ordering::Relaxed);
            return 204;
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
        204
    }
}

/// `/ep/<index>` → index; anything else is no endpoint of ours.
fn endpoint_index(path: &str) -> Option<usize> {
    path.strip_prefix("/ep/")?.parse().ok()
}

/// The path of endpoint `ep` at the receiver.
fn endpoint_path(ep: usize) -> String {
    format!("/ep/{ep}")
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

/// The test kit's receiver with the bench's script; stops when dropped.
pub struct BenchReceiver {
    rx: testkit::Receiver,
    pub state: Arc<RecvState>,
}

impl BenchReceiver {
    /// Starts a receiver for `specs` (endpoint i at `/ep/<i>`, checked with its own secret),
    /// expecting event numbers `< max_events` and keys `< keys`. `base` is the clock shared
    /// with the producers' [`CommitLog`].
    pub async fn start(
        specs: Vec<EndpointSpec>,
        max_events: usize,
        keys: usize,
        base: Instant,
    ) -> anyhow::Result<BenchReceiver> {
        for s in &specs {
            // The test kit would panic on a malformed secret; say which endpoint had it.
            standardwebhooks::Webhook::new(&s.secret)
                .map_err(|e| anyhow::anyhow!("endpoint {}: {e}", s.name))?;
        }
        let mut builder = testkit::Receiver::builder().record(false);
        for (i, s) in specs.iter().enumerate() {
            builder = builder.path_secret(&endpoint_path(i), &s.secret);
        }
        let state = Arc::new(RecvState::new(specs, max_events, keys, base));
        let script = {
            let state = Arc::clone(&state);
            testkit::script(move |req| state.answer(req))
        };
        let rx = builder.script(script).start().await;
        Ok(BenchReceiver { rx, state })
    }

    pub fn url(&self, ep: usize) -> String {
        self.rx.url_for(&endpoint_path(ep))
    }
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

    fn spec(behaviour: Behaviour) -> EndpointSpec {
        EndpointSpec {
            name: "t".into(),
            secret: new_secret(),
            type_mask: 1,
            patterns: vec!["*".into()],
            tenant: 0,
            behaviour,
            tracked: true,
            db_id: None,
        }
    }

    fn body(n: u32, k: u32, s: u32) -> String {
        format!(r#"{{"n":{n},"k":{k},"s":{s},"t":0}}"#)
    }

    #[test]
    fn counts_order_violations_duplicates_and_bad_signatures() {
        let st = RecvState::new(vec![spec(Behaviour::Ok)], 10, 2, Instant::now());
        let send = |n: u32, k: u32, s: u32| {
            let b = body(n, k, s);
            st.count(Some(0), &format!("evt_{n}"), true, b.as_bytes(), 1)
        };
        assert_eq!(send(0, 0, 1), 204);
        assert_eq!(send(1, 0, 3), 204); // gaps are fine
        assert_eq!(send(2, 1, 1), 204); // other key
        send(1, 0, 3); // duplicate, not a violation
        send(3, 0, 2); // seq 2 after 3: violation
        let c = st.counters(0).unwrap();
        assert_eq!(c.unique.load(Ordering::Relaxed), 4);
        assert_eq!(c.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(c.order_violations.load(Ordering::Relaxed), 1);
        assert!(st.seen(0, 3) && !st.seen(0, 4));

        let b = body(4, 0, 9);
        assert_eq!(st.count(Some(0), "evt_4", false, b.as_bytes(), 1), 401);
        assert_eq!(st.count(Some(0), "", true, b.as_bytes(), 1), 401);
        assert_eq!(c.bad_signatures.load(Ordering::Relaxed), 2);
        assert_eq!(st.count(Some(0), "evt_5", true, b"{}", 1), 400);
        assert_eq!(
            st.count(Some(0), "evt_99", true, body(99, 0, 1).as_bytes(), 1),
            400
        );
        assert_eq!(c.bad_payloads.load(Ordering::Relaxed), 2);
        assert_eq!(st.count(Some(1), "evt_6", true, b.as_bytes(), 1), 404);
        assert_eq!(st.count(None, "evt_6", true, b.as_bytes(), 1), 404);
        assert_eq!(st.unknown_paths(), 2);
        assert_eq!(st.take_arrivals().len(), 4);
    }

    #[test]
    fn endpoints_are_found_by_their_path() {
        assert_eq!(endpoint_index(&endpoint_path(7)), Some(7));
        assert_eq!(endpoint_index("/ep/x"), None);
        assert_eq!(endpoint_index("/hook"), None);
    }

    /// Through HTTP: each endpoint's secret is checked at its own path, a failing endpoint
    /// answers 500 without being counted as delivered, and an arrival is stamped on the
    /// producers' clock.
    #[tokio::test]
    async fn the_test_kit_receiver_checks_each_endpoint_with_its_own_secret() {
        let specs = vec![spec(Behaviour::Ok), spec(Behaviour::Fail)];
        let secrets: Vec<_> = specs
            .iter()
            .map(|s| standardwebhooks::Webhook::new(&s.secret).unwrap())
            .collect();
        let base = Instant::now();
        let r = BenchReceiver::start(specs, 10, 2, base).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = async |ep: usize, secret: &standardwebhooks::Webhook, n: u32| {
            let (id, b) = (format!("evt_{n}"), body(n, 0, n + 1));
            let ts = chrono::Utc::now().timestamp();
            let sig = secret.sign(&id, ts, b.as_bytes()).unwrap();
            http.post(r.url(ep))
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(b)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        assert_eq!(post(0, &secrets[0], 0).await, 204);
        assert_eq!(post(0, &secrets[1], 1).await, 401);
        assert_eq!(post(1, &secrets[1], 2).await, 500);
        assert_eq!(post(2, &secrets[1], 3).await, 404);
        let t = r.state.totals();
        assert_eq!((t.requests, t.bad_signatures, t.unknown_paths), (3, 1, 1));
        assert_eq!(r.state.tracked_unique.load(Ordering::Relaxed), 1);
        let arrivals = r.state.take_arrivals();
        assert_eq!(arrivals.len(), 1);
        assert!(arrivals[0].t_ns > 0 && arrivals[0].t_ns <= r.state.now_ns());
    }
}
