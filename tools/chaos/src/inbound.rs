//! Inbound load (issue 12): a provider posting signed requests to the replicas' inbound
//! listeners while they are killed and PostgreSQL restarts, and the worker the requests are
//! relayed to.
//!
//! * **The source** `gh`: `verify => 'github'` (`x-hub-signature-256: sha256=<HMAC-SHA256 of
//!   the body>`, a random secret), idempotency on `x-github-delivery` (the scheme's default),
//!   the ordering key from the JSON pointer `/k`, the event type from `x-github-event`
//!   (`inbound.gh.push`, `inbound.gh.issues`).
//! * **The worker**: a [`testkit::Receiver`] subscribed to `inbound.*` and to nothing else (the
//!   soak's three receivers subscribe to `res.*` and `misc.*`, so relayed requests never mix
//!   with their accounting). It answers 200, with a 500 or a reset now and then so the relay's
//!   retries run too. It keeps every request: headers and body bytes, for the byte-for-byte check.
//! * **The sender** ([`Sender`]): one task per ordering key, all sharing `rps` new requests per
//!   second. A key's requests go one at a time: request n+1 is sent only after request n was
//!   answered 2xx, so the order the provider meant is the order in which outboxd stored them.
//!   A request that is not answered 2xx (a 503 or 429, a refused or reset connection while a
//!   replica is down, a timeout, which fails the run) is sent again with the same idempotency key to a replica drawn
//!   again, after 0.1–0.25 s, as a provider's retry would (the length of a `Retry-After` is
//!   not waited for, only its presence is checked: the soak is short). After [`Sender::stop`]
//!   each key finishes the request it has, for at most [`SETTLE`].
//!
//! Each replica has a fixed inbound port (`OUTBOXD_INBOUND_LISTEN`), chosen once, so the sender
//! finds a replica again after it was restarted. Every attempt is recorded ([`Sent`]) for
//! [`crate::check`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sha2::Sha256;
use testkit::{Reply, behaviour};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::receiver::lock;

/// The source's name: requests go to `/in/gh`.
pub const SOURCE: &str = "gh";
/// Ordering keys (one sender task each).
pub const KEYS: usize = 24;
/// Where the worker's endpoint points, on the worker receiver.
pub const WORKER_PATH: &str = "/hook/worker";
/// After the sender is told to stop, how long a key may go on retrying its last request.
pub const SETTLE: Duration = Duration::from_secs(20);
/// One attempt's time limit: beyond the 10 s within which a replica whose database does not
/// answer says 503 (the writer's timeout). Running out of it fails the run ([`crate::check`]).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts of one request at most (retries are 0.1–0.25 s apart: minutes).
const MAX_ATTEMPTS: u32 = 600;

/// The source, the worker and its endpoint, made before the replicas start.
pub struct Inbound {
    /// The `github` source's secret (the worker re-verifies the provider's signature with it).
    pub secret: String,
    /// Subscribed to `inbound.*`; verifies outboxd's signatures with its endpoint's secret.
    pub worker: testkit::Receiver,
    /// Its `outbox.endpoints.id`.
    pub endpoint_id: i64,
    /// The replicas' inbound ports, by slot.
    pub ports: Vec<u16>,
}

impl Inbound {
    /// Creates the source and the worker's endpoint, and chooses one inbound port per replica.
    pub async fn set_up(
        admin: &tokio_postgres::Client,
        rng: &mut StdRng,
        replicas: usize,
    ) -> anyhow::Result<Inbound> {
        let secret = hex::encode(rng.random::<[u8; 20]>());
        admin
            .execute(
                "SELECT outbox.add_source($1, 'github', $2, ordering_key => '/k',
                                          event_type => 'header:X-GitHub-Event')",
                &[&SOURCE, &secret],
            )
            .await
            .context("add_source")?;
        let key: [u8; 32] = rng.random();
        let endpoint_secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let worker = testkit::Receiver::start(&endpoint_secret, worker_script()).await;
        let endpoint_id: i64 = admin
            .query_one(
                "SELECT outbox.add_endpoint($1, '{inbound.*}', NULL, $2)",
                &[&worker.url_for(WORKER_PATH), &endpoint_secret],
            )
            .await
            .context("add_endpoint (the inbound worker)")?
            .get(0);
        let ports = (0..replicas).map(|_| testkit::free_port()).collect();
        Ok(Inbound {
            secret,
            worker,
            endpoint_id,
            ports,
        })
    }
}

/// The worker answers 200, but every 23rd request 500 and every 37th a reset (by arrival
/// number: the same for every run), so the relay retries now and then.
fn worker_script() -> testkit::Script {
    behaviour(|_, n| match (n % 23, n % 37) {
        (11, _) => Reply::status(500),
        (_, 29) => Reply::reset(),
        _ => Reply::ok(),
    })
}

/// What the checks get: the set-up, the rate asked for, and every request the sender made.
pub struct InboundRun {
    pub inbound: Inbound,
    pub rps: f64,
    pub sends: Vec<Sent>,
}

/// How one attempt ended, as the provider saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer; `retry_after`: it had a `Retry-After` header.
    Status { code: u16, retry_after: bool },
    /// The connection could not be made (nobody listens: the replica is down).
    Refused,
    /// The connection broke before an answer came (a replica killed mid-request, a kept-alive
    /// connection to a process that is gone).
    Broken,
    /// No answer within the attempt's time limit: a replica that took the connection and
    /// neither answered nor went away.
    Timeout,
}

impl Outcome {
    pub fn is_2xx(self) -> bool {
        matches!(self, Outcome::Status { code, .. } if (200..300).contains(&code))
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    /// Replica slot.
    pub replica: usize,
    /// When it was sent and answered, on the run's clock.
    pub sent_at: Duration,
    pub answered_at: Duration,
    pub outcome: Outcome,
    /// A 2xx's body: `{"received": true, "request_id": n}` for a request stored now, …
    pub request_id: Option<i64>,
    /// … `{"received": true, "duplicate": true}` for one stored before.
    pub duplicate: bool,
}

/// One request the provider meant to deliver, and every attempt at it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `x-github-delivery`: the idempotency key.
    pub id: String,
    /// The ordering key (`/k`) and the request's place in that key's sequence (1, 2, …).
    pub key: String,
    pub seq: i64,
    pub event: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub attempts: Vec<Attempt>,
}

impl Sent {
    /// Some attempt was answered 2xx: the provider considers it delivered.
    pub fn acked(&self) -> bool {
        self.attempts.iter().any(|a| a.outcome.is_2xx())
    }
}

/// Every request the sender made.
pub type Sends = Arc<Mutex<Vec<Sent>>>;

/// The running sender; see the [module docs](self).
pub struct Sender {
    stop: CancellationToken,
    limiter: tokio::task::JoinHandle<()>,
    keys: Vec<tokio::task::JoinHandle<()>>,
    sends: Sends,
}

/// What every key task shares.
struct Shared {
    http: reqwest::Client,
    ports: Vec<u16>,
    secret: String,
    permits: Arc<Semaphore>,
    sends: Sends,
    stop: CancellationToken,
    /// Distinguishes this run's idempotency keys from any other run's.
    run: u16,
}

impl Sender {
    /// `rps` new requests per second over [`KEYS`] keys, to the replicas' `ports`.
    pub fn start(
        rps: f64,
        ports: Vec<u16>,
        secret: String,
        rng: &mut StdRng,
    ) -> anyhow::Result<Sender> {
        let stop = CancellationToken::new();
        let permits = Arc::new(Semaphore::new(0));
        let sends: Sends = Arc::default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .context("the inbound sender's HTTP client")?;
        let shared = Arc::new(Shared {
            http,
            ports,
            secret,
            permits: permits.clone(),
            sends: sends.clone(),
            stop: stop.clone(),
            run: rng.random(),
        });
        let limiter = tokio::spawn(crate::producer::rate_limiter(permits, rps, stop.clone()));
        let keys = (0..KEYS)
            .map(|k| tokio::spawn(send_key(shared.clone(), k, rng.random())))
            .collect();
        Ok(Sender {
            stop,
            limiter,
            keys,
            sends,
        })
    }

    /// No new requests from now on; each key settles the one it has.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits for every key to settle (bounded by [`SETTLE`] and the attempt limit).
    pub async fn finish(self) -> Vec<Sent> {
        for k in self.keys {
            if tokio::time::timeout(SETTLE + ATTEMPT_TIMEOUT * 2, k)
                .await
                .is_err()
            {
                eprintln!("an inbound sender task did not settle in time");
            }
        }
        let _ = self.limiter.await;
        std::mem::take(&mut *lock(&self.sends))
    }
}

/// One ordering key's requests, one at a time, until stopped.
async fn send_key(shared: Arc<Shared>, k: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let key = format!("key-{k:02}");
    let mut seq = 0i64;
    while !shared.stop.is_cancelled() {
        if !crate::producer::take_permit(&shared.permits, &shared.stop).await {
            return;
        }
        seq += 1;
        let mut sent = request(&mut rng, shared.run, &key, seq);
        deliver(&shared, &mut rng, &mut sent).await;
        let acked = sent.acked();
        lock(&shared.sends).push(sent);
        if !acked {
            // Settling ran out of time (or attempts): nothing more for this key.
            return;
        }
    }
}

/// Sends `sent` until an attempt is answered 2xx, recording every attempt; after the stop
/// only until [`SETTLE`] has passed.
async fn deliver(shared: &Shared, rng: &mut StdRng, sent: &mut Sent) {
    let mut settle_until: Option<tokio::time::Instant> = None;
    let mut last: Option<usize> = None;
    for _ in 0..MAX_ATTEMPTS {
        if shared.stop.is_cancelled() {
            let until = *settle_until.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
            if tokio::time::Instant::now() >= until {
                return;
            }
        }
        // Another replica than the one that just failed, when there is one.
        let replica = loop {
            let r = rng.random_range(0..shared.ports.len());
            if shared.ports.len() < 2 || Some(r) != last {
                break r;
            }
        };
        last = Some(replica);
        let attempt = post(shared, replica, sent).await;
        let ok = attempt.outcome.is_2xx();
        sent.attempts.push(attempt);
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..250))).await;
    }
}

/// One attempt at `sent` on `replica`.
async fn post(shared: &Shared, replica: usize, sent: &Sent) -> Attempt {
    let url = format!("http://127.0.0.1:{}/in/{SOURCE}", shared.ports[replica]);
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(shared.secret.as_bytes(), &sent.body))
    );
    let sent_at = clock::now();
    let result = shared
        .http
        .post(url)
        .header("content-type", sent.content_type)
        .header("user-agent", "GitHub-Hookshot/outboxd-chaos")
        .header("x-github-event", sent.event)
        .header("x-github-delivery", &sent.id)
        .header("x-hub-signature-256", signature)
        .body(sent.body.clone())
        .send()
        .await;
    let (mut request_id, mut duplicate) = (None, false);
    let outcome = match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            // Read the answer to the end (the connection can then be used again). A status
            // whose body broke off still counts as that status: the stricter reading.
            if let Ok(body) = resp.bytes().await {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                request_id = v["request_id"].as_i64();
                duplicate = v["duplicate"].as_bool() == Some(true);
            }
            Outcome::Status { code, retry_after }
        }
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Refused,
        Err(_) => Outcome::Broken,
    };
    Attempt {
        replica,
        sent_at,
        answered_at: clock::now(),
        outcome,
        request_id,
        duplicate,
    }
}

/// Request `seq` of `key`: a JSON body written the way no serializer would (odd spacing, keys
/// in an odd order, an escaped and an unescaped non-ASCII character, a random-length pad), so
/// that anything but the exact bytes (a jsonb round trip, a re-encoding) shows in the check.
fn request(rng: &mut StdRng, run: u16, key: &str, seq: i64) -> Sent {
    let id = format!("gh-{run:04x}-{key}-{seq}");
    let pad = "x".repeat(rng.random_range(0..1500));
    let space = [" ", "", "  ", "\t", "\n  "];
    let s = |rng: &mut StdRng| space[rng.random_range(0..space.len())];
    let body = format!(
        "{{{}\"seq\":{}{seq} ,\"k\" :\"{key}\",{}\"id\":\"{id}\", \"note\":\"caf\\u00e9 \u{e9} \u{2713}\",\"pad\":\"{pad}\"{}}}",
        s(rng),
        s(rng),
        s(rng),
        s(rng)
    );
    Sent {
        id,
        key: key.to_owned(),
        seq,
        event: if rng.random_bool(0.7) {
            "push"
        } else {
            "issues"
        },
        content_type: if rng.random_bool(0.5) {
            "application/json"
        } else {
            "application/json; charset=utf-8"
        },
        body: body.into_bytes(),
        attempts: Vec::new(),
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::{hmac_sha256, request};

    #[test]
    fn a_request_body_is_json_with_its_key_and_seq_but_not_in_canonical_form() {
        let mut rng = StdRng::seed_from_u64(3);
        let r = request(&mut rng, 0xab, "key-07", 5);
        assert_eq!(r.id, "gh-00ab-key-07-5");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["k"].as_str(), v["seq"].as_i64()),
            (Some("key-07"), Some(5))
        );
        assert_eq!(v["id"].as_str(), Some(r.id.as_str()));
        assert_eq!(v["note"].as_str(), Some("caf\u{e9} \u{e9} \u{2713}"));
        assert_ne!(serde_json::to_vec(&v).unwrap(), r.body);
    }

    #[test]
    fn the_signature_is_githubs_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
