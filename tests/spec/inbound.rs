//! Inbound webhooks (issue 12, README "Receiving webhooks"): providers POST to
//! `OUTBOXD_INBOUND_LISTEN`; a request is answered 2xx only once it is stored, and internal
//! endpoints get it relayed byte for byte, in order, signed by outboxd. Real PostgreSQL, real
//! HTTP on both sides; the in-process engine, or the `outboxd` binary where it gets killed.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use outboxd::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "admin-token-for-tests-0123456789";
const GH_SECRET: &str = "It's a Secret to Everybody";
const STRIPE_SECRET: &str = "whsec_stripe_test_secret";

/// An engine with the inbound listener on a free port.
async fn start(db: &TestDb, extra: &[&str]) -> Engine {
    let mut args = vec![
        "--inbound-listen",
        "127.0.0.1:0",
        "--allow-networks",
        "127.0.0.0/8",
        "--admin-token",
        TOKEN,
    ];
    args.extend_from_slice(extra);
    Engine::start(engine_config(db, &args))
        .await
        .expect("engine starts")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// What a provider sees of one request.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// A provider posting to `/in/{source}`.
struct Provider {
    http: reqwest::Client,
    base: String,
}

impl Provider {
    fn new(addr: SocketAddr) -> Provider {
        Provider {
            http: http(),
            base: format!("http://{addr}"),
        }
    }

    fn of(engine: &Engine) -> Provider {
        Provider::new(engine.inbound_addr.expect("the inbound listener is on"))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(
        &self,
        source: &str,
        headers: &[(&str, String)],
        body: impl Into<Vec<u8>>,
    ) -> Answer {
        self.send(
            reqwest::Method::POST,
            &format!("/in/{source}"),
            headers,
            body.into(),
        )
        .await
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `x-hub-signature-256`, as GitHub computes it.
fn github(body: &[u8]) -> (&'static str, String) {
    (
        "x-hub-signature-256",
        format!(
            "sha256={}",
            hex::encode(hmac_sha256(GH_SECRET.as_bytes(), &[body]))
        ),
    )
}

/// `stripe-signature` at unix time `t`, as Stripe computes it.
fn stripe(t: i64, body: &[u8]) -> (&'static str, String) {
    let t = t.to_string();
    let v1 = hex::encode(hmac_sha256(
        STRIPE_SECRET.as_bytes(),
        &[t.as_bytes(), b".", body],
    ));
    ("stripe-signature", format!("t={t},v1={v1}"))
}

/// Standard Webhooks headers, signed by the independent `standardwebhooks` crate.
fn standard(secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let sig = standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .sign(id, ts, body)
        .expect("sign");
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ]
}

/// outboxd's Standard Webhooks signature over the relayed bytes, checked byte-wise: the
/// `standardwebhooks` crate (the receiver's `signature_ok`) refuses bodies that are not UTF-8.
fn signed_by_outboxd(r: &ReceivedRequest) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(TEST_SECRET.trim_start_matches("whsec_"))
        .expect("test secret");
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let mac = hmac_sha256(
        &key,
        &[
            h("webhook-id").as_bytes(),
            b".",
            h("webhook-timestamp").as_bytes(),
            b".",
            &r.body,
        ],
    );
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    );
    h("webhook-signature").split(' ').any(|s| s == want)
}

async fn scalar(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

async fn stored(c: &tokio_postgres::Client) -> (i64, i64) {
    (
        scalar(c, "SELECT count(*) FROM outbox.inbound_requests").await,
        scalar(c, "SELECT count(*) FROM outbox.events").await,
    )
}

/// `outboxd_inbound_requests_total` for one source and result, from `/metrics`.
async fn counted(engine: &Engine, source: &str, result: &str) -> f64 {
    let text = http()
        .get(format!("http://{}/metrics", engine.listen_addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    parse_metrics(&text)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("outboxd_inbound_requests_total{")
                && k.contains(&format!("source=\"{source}\""))
                && k.contains(&format!("result=\"{result}\""))
        })
        .map(|(_, v)| v)
        .sum()
}

/// A fresh database with one source: `SELECT outbox.add_source(<args>)`, `$1` = `secret`.
async fn with_source(args: &str, secret: Option<&str>) -> (TestDb, tokio_postgres::Client) {
    let db = fresh_db().await;
    let c = db.client().await;
    let sql = format!("SELECT outbox.add_source({args})");
    let result = match secret {
        Some(secret) => c.execute(&sql, &[&secret]).await,
        None => c.execute(&sql, &[]).await,
    };
    result.unwrap_or_else(|e| panic!("{sql}: {e}"));
    (db, c)
}

/// A receiver for relayed requests, subscribed to `inbound.*` (an internal endpoint).
async fn worker(c: &tokio_postgres::Client, script: Script) -> Receiver {
    let rx = Receiver::start(TEST_SECRET, script).await;
    c.execute(
        "SELECT outbox.add_endpoint($1, '{inbound.*}', NULL, $2)",
        &[&rx.url(), &TEST_SECRET],
    )
    .await
    .expect("add_endpoint");
    rx
}

#[tokio::test]
async fn a_verified_request_is_stored_then_relayed_byte_for_byte_with_its_content_type() {
    let (db, c) = with_source(
        "'gh', 'github', $1, event_type => 'header:X-GitHub-Event'",
        Some(GH_SECRET),
    )
    .await;
    let rx = worker(&c, always(Reply::ok())).await;
    let engine = start(&db, &[]).await;
    let provider = Provider::of(&engine);

    // GitHub can send form-encoded payloads; nothing in the path may reparse them.
    let body = b"payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D&x=%FF".to_vec();
    let (sig_name, sig) = github(&body);
    let headers = [
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (sig_name, sig.clone()),
        ("x-github-event", "push".to_owned()),
        (
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
        ),
    ];
    let a = provider.post("gh", &headers, body.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["received"], true);
    let request_id = a.body["request_id"].as_i64().expect("request id");

    // Acknowledged means stored: the raw request and its event, in the audit view.
    let row = c
        .query_one(
            "SELECT l.source, l.method, l.path, l.body, l.content_type, l.idempotency_key,
                    l.event_type, l.events, e.event_type AS relayed_type, e.payload IS NULL AS no_payload
               FROM outbox.inbound_log l JOIN outbox.events e ON e.request_id = l.id
              WHERE l.id = $1",
            &[&request_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>("source"), "gh");
    assert_eq!(row.get::<_, String>("method"), "POST");
    assert_eq!(row.get::<_, String>("path"), "/in/gh");
    assert_eq!(row.get::<_, Vec<u8>>("body"), body);
    assert_eq!(
        row.get::<_, String>("idempotency_key"),
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert_eq!(row.get::<_, String>("relayed_type"), "inbound.gh.push");
    assert_eq!(row.get::<_, i64>("events"), 1);
    assert!(row.get::<_, bool>("no_payload"));

    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
    let got = &rx.requests()[0];
    assert_eq!(got.body, body, "the provider's bytes, untouched");
    assert_eq!(
        got.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert!(
        got.signature_ok,
        "signed by outboxd with the endpoint's secret"
    );
    assert_eq!(got.headers["x-inbound-x-hub-signature-256"], sig.as_str());
    assert_eq!(got.headers["x-inbound-x-github-event"], "push");
    assert_eq!(got.headers["x-outboxd-source"], "gh");
    assert_eq!(
        got.headers["x-outboxd-request-id"],
        request_id.to_string().as_str()
    );
    // The worker can re-verify the provider's signature on what it received.
    let (_, again) = github(&got.body);
    assert_eq!(again, sig);
    // The event log shows the relaying event with the body's size; it has no JSON payload.
    let path = format!("/events/{}", got.id);
    let (status, ev) = api(&engine, reqwest::Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{ev}");
    assert_eq!(ev["event"]["event_type"], "inbound.gh.push", "{ev}");
    let (status, why) = api(
        &engine,
        reqwest::Method::GET,
        &format!("{path}/payload"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{why}");
    engine.stop().await;
}

#[tokio::test]
async fn any_bytes_and_any_content_type_are_relayed_exactly() {
    let (db, c) = with_source("'raw', 'none'", None).await;
    let rx = worker(&c, always(Reply::ok())).await;
    let engine = start(&db, &[]).await;
    let provider = Provider::of(&engine);
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let xml =
        br#"<?xml version="1.0"?><notification><amount>12.50</amount></notification>"#.to_vec();
    let cases = [
        (Some("application/octet-stream"), binary),
        (Some("text/xml; charset=ISO-8859-1"), xml),
        (None, b"no content type at all".to_vec()),
        (
            Some("application/json"),
            br#"{"a": 1,   "b": [1,2]}"#.to_vec(),
        ),
    ];
    for (ct, body) in &cases {
        let headers: Vec<(&str, String)> = ct
            .iter()
            .map(|ct| ("content-type", ct.to_string()))
            .collect();
        let a = provider.post("raw", &headers, body.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{a:?}");
    }
    assert!(
        rx.wait_for_count(cases.len(), Duration::from_secs(10))
            .await
    );
    for (ct, body) in &cases {
        let got = rx
            .requests()
            .into_iter()
            .find(|r| r.body == body[..])
            .unwrap_or_else(|| panic!("{ct:?} relayed byte for byte"));
        assert_eq!(
            got.headers["content-type"],
            ct.unwrap_or("application/octet-stream")
        );
        assert!(signed_by_outboxd(&got), "{ct:?} signed by outboxd");
    }
    // JSON is relayed as sent, not as PostgreSQL's canonical jsonb text.
    assert!(
        rx.requests()
            .iter()
            .any(|r| r.body[..] == br#"{"a": 1,   "b": [1,2]}"#[..])
    );
    engine.stop().await;
}

#[tokio::test]
async fn every_scheme_accepts_its_providers_signature_and_refuses_others_with_401() {
    let db = fresh_db().await;
    let c = db.client().await;
    let sw_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    c.batch_execute(&format!(
        "SELECT outbox.add_source('sw', 'standard-webhooks', '{sw_secret}');
         SELECT outbox.add_source('stripe', 'stripe', '{STRIPE_SECRET}');
         SELECT outbox.add_source('gh', 'github', $${GH_SECRET}$$);
         SELECT outbox.add_source('shop', 'hmac-sha256', 'shpss_secret');
         SELECT outbox.add_source('tok', 'token', 'a-long-shared-token');
         SELECT outbox.add_source('rot', 'github', 'old-secret');
         UPDATE outbox.sources SET secrets = '{{new-secret,old-secret}}' WHERE name = 'rot';"
    ))
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    let good: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("sw", standard(sw_secret, "msg_1", now(), body)),
        ("stripe", vec![stripe(now(), body)]),
        ("gh", vec![github(body)]),
        (
            "shop",
            vec![(
                "x-shopify-hmac-sha256",
                base64::engine::general_purpose::STANDARD
                    .encode(hmac_sha256(b"shpss_secret", &[body])),
            )],
        ),
        (
            "tok",
            vec![("authorization", "Bearer a-long-shared-token".into())],
        ),
    ];
    for (source, headers) in &good {
        let a = p.post(source, headers, body.to_vec()).await;
        assert_eq!(a.status, StatusCode::OK, "{source}: {a:?}");
    }
    let bad: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "sw",
            standard(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "msg_2",
                now(),
                body,
            ),
        ),
        ("stripe", vec![stripe(now(), b"{}")]),
        (
            "gh",
            vec![("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))],
        ),
        ("shop", vec![("x-shopify-hmac-sha256", "bm9wZQ==".into())]),
        (
            "tok",
            vec![("authorization", "Bearer a-long-shared-tokeN".into())],
        ),
        ("gh", vec![]),
    ];
    for (source, headers) in &bad {
        let a = p.post(source, headers, body.to_vec()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{source}: {a:?}");
    }
    assert_eq!(stored(&c).await, (5, 5), "only the verified ones");
    assert_eq!(counted(&engine, "gh", "unauthorized").await, 2.0);
    assert_eq!(counted(&engine, "stripe", "unauthorized").await, 1.0);
    assert_eq!(counted(&engine, "gh", "stored").await, 1.0);
    // During a rotation either active secret verifies; another one does not.
    for (key, want) in [
        ("new-secret", StatusCode::OK),
        ("old-secret", StatusCode::OK),
        ("other-secret", StatusCode::UNAUTHORIZED),
    ] {
        let sig = format!(
            "sha256={}",
            hex::encode(hmac_sha256(key.as_bytes(), &[body]))
        );
        let a = p
            .post("rot", &[("x-hub-signature-256", sig)], body.to_vec())
            .await;
        assert_eq!(a.status, want, "{key}: {a:?}");
    }
    engine.stop().await;
}

#[tokio::test]
async fn a_duplicate_idempotency_key_or_a_replayed_signature_stores_nothing_new() {
    let db = fresh_db().await;
    let c = db.client().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    c.execute(
        "SELECT outbox.add_source('sw', 'standard-webhooks', $1)",
        &[&secret],
    )
    .await
    .unwrap();
    c.execute(
        "SELECT outbox.add_source('stripe', 'stripe', $1)",
        &[&STRIPE_SECRET],
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    let body = br#"{"n":1}"#;
    let headers = standard(secret, "msg_same", now(), body);
    let first = p.post("sw", &headers, body.to_vec()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body.get("duplicate").is_none());
    // The provider retries (same webhook-id), or someone replays the captured request.
    for _ in 0..3 {
        let again = p.post("sw", &headers, body.to_vec()).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert_eq!(again.body["duplicate"], true);
    }
    // Replayed later than the tolerance: refused, whatever the idempotency key.
    let old = standard(secret, "msg_old", now() - 600, body);
    assert_eq!(
        p.post("sw", &old, body.to_vec()).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Stripe: the default idempotency key is the event's /id.
    let evt = br#"{"id":"evt_42","type":"charge.succeeded"}"#;
    for _ in 0..2 {
        let a = p.post("stripe", &[stripe(now(), evt)], evt.to_vec()).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let stale = p
        .post("stripe", &[stripe(now() - 301, evt)], evt.to_vec())
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&c).await, (2, 2));
    assert_eq!(counted(&engine, "sw", "duplicate").await, 3.0);
    engine.stop().await;
}

/// Writes `head`, then `body` one byte every `pace` from a task; returns what the server
/// answered (the first line) and how long it took, or the empty string if it closed silently.
async fn raw_exchange(
    addr: SocketAddr,
    head: String,
    body: Vec<u8>,
    pace: Option<Duration>,
) -> (String, Duration) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut r, mut w) = stream.into_split();
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        if w.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        match pace {
            None => {
                for chunk in body.chunks(64 * 1024) {
                    if w.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            }
            Some(pace) => {
                for b in body {
                    if w.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pace).await;
                }
            }
        }
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let line = loop {
        match tokio::time::timeout(Duration::from_secs(20), r.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break String::from_utf8_lossy(&buf).into_owned(),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(2).any(|w| w == b"\r\n") {
                    break String::from_utf8_lossy(&buf).into_owned();
                }
            }
        }
    };
    writer.abort();
    (line.lines().next().unwrap_or("").to_owned(), t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_answer_and_nothing_is_stored() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "SELECT outbox.add_source('stripe', 'stripe', '{STRIPE_SECRET}');
         SELECT outbox.add_source('open', 'none', idempotency_key => '/id');
         UPDATE outbox.sources SET max_body_bytes = 20971520 WHERE name = 'open';"
    ))
    .await
    .unwrap();
    let engine = start(&db, &["--inbound-read-timeout", "1s"]).await;
    let addr = engine.inbound_addr.unwrap();
    let p = Provider::new(addr);
    let body = br#"{"id":"evt_1"}"#;

    // Wrong signature, stale timestamp, no signature at all.
    let mut wrong = stripe(now(), body);
    wrong.1 = wrong.1.replace("v1=", "v1=00");
    for h in [vec![wrong], vec![stripe(now() - 3600, body)], vec![]] {
        assert_eq!(
            p.post("stripe", &h, body.to_vec()).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Malformed JSON where a key is read from it: 400 (even correctly signed).
    let broken = br#"{"id": "evt_2", "#;
    let a = p
        .post("stripe", &[stripe(now(), broken)], broken.to_vec())
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    // Unknown source, other routes, other methods.
    assert_eq!(
        p.post("nope", &[], body.to_vec()).await.status,
        StatusCode::NOT_FOUND
    );
    let a = p
        .send(reqwest::Method::POST, "/v1/endpoints", &[], vec![])
        .await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "nothing but /in/ on this listener"
    );
    let a = p.send(reqwest::Method::GET, "/metrics", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = p.send(reqwest::Method::GET, "/in/open", &[], vec![]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers["allow"], "POST");

    // 21 MiB, declared: refused before it is read. Then the same without a length (chunked).
    let big = vec![b'x'; 21 << 20];
    let head = format!(
        "POST /in/open HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        big.len()
    );
    let (line, _) = raw_exchange(addr, head, big.clone(), None).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    let mut chunked = Vec::new();
    for piece in big.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /in/open HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n".to_owned();
    let (line, _) = raw_exchange(addr, head, chunked, None).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");

    // A body trickled at 1 byte/s: 408 once the read timeout (1 s here) is over.
    let head = "POST /in/open HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n".to_owned();
    let (line, took) =
        raw_exchange(addr, head, vec![b'x'; 100], Some(Duration::from_secs(1))).await;
    assert!(line.starts_with("HTTP/1.1 408"), "{line}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Headers that never end: the connection is closed after the read timeout.
    let (line, took) = raw_exchange(
        addr,
        "POST /in/open HTTP/1.1\r\nhost: t\r\nx-a: ".into(),
        b"bbbbbbbbbb".to_vec(),
        Some(Duration::from_secs(1)),
    )
    .await;
    assert!(!line.starts_with("HTTP/1.1 2"), "{line}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Header floods: too many headers, or too many bytes of them.
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let head = format!("POST /in/open HTTP/1.1\r\nhost: t\r\n{many}content-length: 2\r\n\r\n");
    let (line, _) = raw_exchange(addr, head, b"{}".to_vec(), None).await;
    assert!(line.starts_with("HTTP/1.1 431"), "{line}");
    let head = format!(
        "POST /in/open HTTP/1.1\r\nhost: t\r\nx-big: {}\r\ncontent-length: 2\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let (line, _) = raw_exchange(addr, head, b"{}".to_vec(), None).await;
    assert!(line.starts_with("HTTP/1.1 431"), "{line}");

    assert_eq!(stored(&c).await, (0, 0), "nothing refused was stored");
    assert_eq!(counted(&engine, "stripe", "unauthorized").await, 3.0);
    assert_eq!(counted(&engine, "open", "too_large").await, 2.0);
    assert_eq!(counted(&engine, "open", "timeout").await, 1.0);
    // And the listener still serves.
    let a = p.post("open", &[], br#"{"id":"fine"}"#.to_vec()).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    engine.stop().await;
}

#[tokio::test]
async fn a_sources_rate_limit_answers_429_with_retry_after_and_a_get_challenge_is_echoed() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.add_source('slow', 'none');
         UPDATE outbox.sources SET rate_limit = 2, get_challenge = 'challenge' WHERE name = 'slow';",
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let a = p.post("slow", &[], format!("{{\"n\":{i}}}")).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.headers["retry-after"], "1");
        }
        statuses.push(a.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    assert_eq!(stored(&c).await, (2, 2));
    let a = p
        .send(
            reqwest::Method::GET,
            "/in/slow?challenge=abc%20123&x=1",
            &[],
            vec![],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, Value::String("abc 123".into()));
    assert_eq!(a.headers["content-type"], "text/plain; charset=utf-8");
    engine.stop().await;
}

#[tokio::test]
async fn requests_of_one_ordering_key_reach_the_worker_in_order_one_at_a_time() {
    let (db, c) = with_source("'pay', 'none', ordering_key => '/customer'", None).await;
    // The worker fails every third request: retries must not let a later one overtake.
    let rx = worker(
        &c,
        behaviour(|_, n| {
            if n % 3 == 1 {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        }),
    )
    .await;
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    for seq in 0..30 {
        let body = json!({"customer": format!("cus_{}", seq % 3), "seq": seq}).to_string();
        assert_eq!(p.post("pay", &[], body).await.status, StatusCode::OK);
    }
    assert!(
        rx.wait_for(Duration::from_secs(30), |rs| {
            rs.iter().filter(|r| r.is_2xx() && r.completed()).count() >= 30
        })
        .await
    );
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    let mut answered: Vec<(String, i64)> = Vec::new();
    for r in rx.requests().iter().filter(|r| r.is_2xx()) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let (k, seq) = (
            v["customer"].as_str().unwrap().to_owned(),
            v["seq"].as_i64().unwrap(),
        );
        if let Some(prev) = last.insert(k.clone(), seq) {
            assert!(prev < seq, "{k}: {seq} after {prev}");
        }
        answered.push((k, seq));
    }
    assert_eq!(answered.len(), 30);
    engine.stop().await;
}

/// A small client for `/v1`.
async fn api(
    engine: &Engine,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = http()
        .request(method, format!("http://{}/v1{path}", engine.listen_addr))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn replay_relays_a_sources_stored_requests_again_in_order() {
    let (db, c) = with_source("'pay', 'none', ordering_key => '/k'", None).await;
    let rx = worker(&c, always(Reply::ok())).await;
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    for seq in 0..10 {
        let body = json!({"k": "one", "seq": seq}).to_string();
        assert_eq!(p.post("pay", &[], body).await.status, StatusCode::OK);
    }
    assert!(rx.wait_for_count(10, Duration::from_secs(10)).await);
    let (status, body) = api(
        &engine,
        reqwest::Method::POST,
        "/sources/pay/replay",
        Some(json!({"since": since.to_rfc3339()})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replayed"], 10);
    assert!(rx.wait_for_count(20, Duration::from_secs(10)).await);
    let requests = rx.requests();
    let (first, again) = requests.split_at(10);
    let bodies = |rs: &[ReceivedRequest]| rs.iter().map(|r| r.body.clone()).collect::<Vec<_>>();
    assert_eq!(
        bodies(first),
        bodies(again),
        "the same bytes, in the same order"
    );
    let ids: HashSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 20, "a replay is a new event (new webhook-id)");
    // An empty range, an unknown source, a bad time.
    let (_, body) = api(&engine, reqwest::Method::POST, "/sources/pay/replay",
        Some(json!({"since": since.to_rfc3339(), "until": (since + chrono::Duration::seconds(1)).to_rfc3339()}))).await;
    assert_eq!(body["replayed"], 0);
    let (status, _) = api(
        &engine,
        reqwest::Method::POST,
        "/sources/nope/replay",
        Some(json!({"since": since.to_rfc3339()})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api(
        &engine,
        reqwest::Method::POST,
        "/sources/pay/replay",
        Some(json!({"since": "yesterday"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("since"))
    );
    // The SQL function does the same for DBAs.
    let n: i64 = c
        .query_one(
            "SELECT outbox.replay_source('pay', now() - interval '1 hour')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 10);
    engine.stop().await;
}

#[tokio::test]
async fn sources_are_managed_over_rest_and_sql_with_the_same_rules() {
    let db = fresh_db().await;
    let c = db.client().await;
    let engine = start(&db, &[]).await;
    let post = |b: Value| api(&engine, reqwest::Method::POST, "/sources", Some(b));
    let (status, s) = post(
        json!({"name": "stripe", "verify": "stripe", "secret": STRIPE_SECRET,
                                   "ordering_key": "/data/object/customer", "tenant_id": "acme"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["path"], "/in/stripe");
    assert_eq!(s["idempotency_key"], "/id", "the scheme's default");
    assert_eq!(s["secret_count"], 1);
    assert!(s.get("secrets").is_none() && s.get("secret").is_none());
    let (status, _) = post(json!({"name": "stripe", "verify": "none"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    for (bad, field) in [
        (json!({"name": "a b", "verify": "none"}), "name"),
        (json!({"name": "x", "verify": "hmac"}), "verify"),
        (json!({"name": "x", "verify": "github"}), "secret"),
        (
            json!({"name": "x", "verify": "standard-webhooks", "secret": "nope"}),
            "secret",
        ),
        // Standard Webhooks secrets are 24 to 64 bytes (16 here).
        (
            json!({"name": "x", "verify": "standard-webhooks", "secret": "whsec_AAAAAAAAAAAAAAAAAAAAAA=="}),
            "secret",
        ),
        (
            json!({"name": "x", "verify": "none", "ordering_key": "data.id"}),
            "ordering_key",
        ),
        (
            json!({"name": "x", "verify": "none", "max_body_bytes": 21 << 20}),
            "max_body_bytes",
        ),
        (
            json!({"name": "x", "verify": "none", "rate_limit": 0}),
            "rate_limit",
        ),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{bad}: {body}");
    }
    // A rotation: both secrets verify until the old one is dropped.
    let (status, s) = api(&engine, reqwest::Method::PATCH, "/sources/stripe",
        Some(json!({"secrets": ["whsec_new_one", STRIPE_SECRET], "idempotency_key": null, "enabled": false}))).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(
        (s["secret_count"].as_i64(), s["enabled"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(s["idempotency_key"], Value::Null);
    // A PATCH that changes nothing writes nothing.
    let (status, same) = api(
        &engine,
        reqwest::Method::PATCH,
        "/sources/stripe",
        Some(json!({"enabled": false, "idempotency_key": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["updated_at"], s["updated_at"], "not written");
    let (status, _) = api(
        &engine,
        reqwest::Method::PATCH,
        "/sources/stripe",
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, page) = api(&engine, reqwest::Method::GET, "/sources?limit=10", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    // SQL: the stable interface, its defaults and its refusals.
    c.execute("SELECT outbox.add_source('sw', 'standard-webhooks', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')", &[])
        .await
        .unwrap();
    c.execute(
        "SELECT outbox.add_source('gh', 'github', 's', ordering_key => 'Header:X-Repo')",
        &[],
    )
    .await
    .unwrap();
    let (status, sw) = api(&engine, reqwest::Method::GET, "/sources/sw", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sw["idempotency_key"], "header:webhook-id");
    let (_, gh) = api(&engine, reqwest::Method::GET, "/sources/gh", None).await;
    assert_eq!(gh["idempotency_key"], "header:x-github-delivery");
    assert_eq!(gh["ordering_key"], "header:x-repo");
    for bad in [
        "SELECT outbox.add_source('x', 'hmac')",
        "SELECT outbox.add_source('x', 'github')",
        "SELECT outbox.add_source('x y', 'none')",
        "SELECT outbox.add_source('x', 'none', ordering_key => 'data')",
        "SELECT outbox.add_source('x', 'standard-webhooks', 'plain')",
        "SELECT outbox.add_source('x', 'standard-webhooks', 'whsec_AAAAAAAAAAAAAAAAAAAAAA==')",
    ] {
        let e = c.execute(bad, &[]).await.expect_err(bad);
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE),
            "{bad}: {e}"
        );
    }
    let (status, _) = api(&engine, reqwest::Method::DELETE, "/sources/gh", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api(&engine, reqwest::Method::GET, "/sources/gh", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    engine.stop().await;
}

#[tokio::test]
async fn a_new_or_changed_source_takes_effect_at_once_on_a_running_listener() {
    let db = fresh_db().await;
    let c = db.client().await;
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    assert_eq!(
        p.post("late", &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    c.execute(
        "SELECT outbox.add_source('late', 'token', 'first-token')",
        &[],
    )
    .await
    .unwrap();
    // Created after the 404 above: found within a second (the absent-name memory), at once
    // through the notification.
    let auth = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    wait_until(Duration::from_secs(5), "the new source", || async {
        p.post("late", &auth("first-token"), "{}").await.status == StatusCode::OK
    })
    .await;
    c.execute(
        "UPDATE outbox.sources SET secrets = '{second-token}' WHERE name = 'late'",
        &[],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(5), "the new secret", || async {
        p.post("late", &auth("second-token"), "{}").await.status == StatusCode::OK
    })
    .await;
    assert_eq!(
        p.post("late", &auth("first-token"), "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    c.execute(
        "UPDATE outbox.sources SET enabled = false WHERE name = 'late'",
        &[],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(5), "the pause", || async {
        let a = p.post("late", &auth("second-token"), "{}").await;
        a.status == StatusCode::SERVICE_UNAVAILABLE && a.headers.contains_key("retry-after")
    })
    .await;
    engine.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_requests_that_no_kept_event_relays() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO outbox.inbound_requests (source, received_at, method, path, headers, body, event_type)
         SELECT 'old', now() - interval '2 hours', 'POST', '/in/old', '[]', 'x', 'inbound.old'
           FROM generate_series(1, 30);
         INSERT INTO outbox.inbound_requests (source, method, path, headers, body, event_type)
         SELECT 'new', 'POST', '/in/new', '[]', 'y', 'inbound.new' FROM generate_series(1, 5);
         -- One old request is still relayed by a kept event: it stays.
         INSERT INTO outbox.events (event_type, request_id)
         SELECT 'inbound.old', min(id) FROM outbox.inbound_requests;",
    )
    .await
    .unwrap();
    let engine = start(
        &db,
        &["--inbound-retention", "1h", "--retention-interval", "100ms"],
    )
    .await;
    wait_until(Duration::from_secs(15), "old requests deleted", || async {
        scalar(&c, "SELECT count(*) FROM outbox.inbound_requests").await == 6
    })
    .await;
    assert_eq!(
        scalar(
            &c,
            "SELECT count(*) FROM outbox.inbound_requests WHERE source = 'old'"
        )
        .await,
        1
    );
    engine.stop().await;
}

/// A cluster of the test's own (to stop it), a database on it with the source `pay` (no
/// verification, idempotency on `/n`) and a worker that answers 200.
async fn own_cluster_with_pay_source(name: &str) -> (Cluster, TestDb, Receiver) {
    let pg = Cluster::throwaway(PgOptions::default())
        .await
        .expect("own PostgreSQL");
    let (url, name) = pg.create_database(name).await.unwrap();
    let db = TestDb { url, name };
    let c = db.client().await;
    c.execute(
        "SELECT outbox.add_source('pay', 'none', idempotency_key => '/n')",
        &[],
    )
    .await
    .unwrap();
    let rx = worker(&c, always(Reply::ok())).await;
    (pg, db, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_503_with_retry_after_then_recovery_without_a_restart() {
    let (mut pg, db, rx) = own_cluster_with_pay_source("outboxd_inbound_down").await;
    let engine = start(&db, &[]).await;
    let p = Provider::of(&engine);
    let mut acked = Vec::new();
    for n in 0..5 {
        let a = p.post("pay", &[], format!("{{\"n\":{n}}}")).await;
        assert_eq!(a.status, StatusCode::OK);
        acked.push(n);
    }
    pg.halt(Restart::Immediate).await.expect("halt");
    for n in 5..10 {
        let a = p.post("pay", &[], format!("{{\"n\":{n}}}")).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
        assert_eq!(a.headers["retry-after"], "5");
    }
    pg.resume().await.expect("resume");
    // The provider retries until accepted; outboxd was never restarted.
    for n in 5..10 {
        let body = format!("{{\"n\":{n}}}");
        wait_until(Duration::from_secs(20), "accepted again", || async {
            p.post("pay", &[], body.clone()).await.status == StatusCode::OK
        })
        .await;
        acked.push(n);
    }
    let c = db.client().await;
    assert_eq!(stored(&c).await, (10, 10), "each acknowledged request once");
    assert!(rx.wait_for_count(10, Duration::from_secs(20)).await);
    engine.stop().await;
    pg.stop().await;
}

/// Found while adding inbound load to the chaos soak (RELIABILITY.md): the listener is bound at
/// start-up, but a replica waiting for PostgreSQL used to leave providers' connections
/// unanswered in the accept queue until they timed out. Now: 503 with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starting_while_postgres_is_down_answers_503_then_stores_once_it_is_up() {
    let (mut pg, db, rx) = own_cluster_with_pay_source("outboxd_inbound_start").await;
    // A clean stop: the test cluster runs with synchronous_commit=off, so an immediate stop
    // this soon after the set-up would lose its last commits (the source, the endpoint).
    pg.halt(Restart::Fast).await.expect("halt");
    let inbound = format!("127.0.0.1:{}", free_port());
    let env = [
        ("OUTBOXD_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_INBOUND_LISTEN", inbound.as_str()),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("OUTBOXD_POLL_INTERVAL", "50ms"),
    ];
    let mut sidecar = Sidecar::run(crate::OUTBOXD, &db.url, &env);
    let url = format!("http://{inbound}/in/pay");
    let post = |n: u32| {
        http()
            .post(&url)
            .timeout(Duration::from_secs(5))
            .body(format!("{{\"n\":{n}}}"))
            .send()
    };
    // Once the port is bound (the process has just started), every answer is a 503.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        match post(0).await {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < deadline, "no answer from {url}: {e}");
                tokio::time::sleep(testkit::poll::POLL_EVERY).await;
            }
        }
    };
    for r in [
        first,
        post(1).await.expect("an answer"),
        post(2).await.expect("an answer"),
    ] {
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "5");
    }
    assert!(!sidecar.log().contains("outboxd started"), "still starting");
    pg.resume().await.expect("resume");
    // The provider's retries are stored once start-up is done; nothing before.
    for n in 0..3 {
        wait_until(Duration::from_secs(30), "accepted once started", || async {
            post(n).await.is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
    }
    let c = db.client().await;
    assert_eq!(stored(&c).await, (3, 3), "each request once");
    assert!(rx.wait_for_count(3, Duration::from_secs(20)).await);
    sidecar.terminate(Duration::from_secs(10)).await;
    pg.stop().await;
}

/// An acknowledged request: its idempotency key and body.
type Acked = (String, Vec<u8>);

/// Providers posting signed requests as fast as they are answered, remembering what was
/// acknowledged (2xx) and what not.
struct Load {
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: tokio_util::sync::CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let tasks = (0..clients)
            .map(|client| {
                let (acked, stop) = (acked.clone(), stop.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .no_proxy()
                        .timeout(Duration::from_secs(5))
                        .build()
                        .unwrap();
                    let mut n = 0u64;
                    while !stop.is_cancelled() {
                        n += 1;
                        let id = format!("c{client}-{n}");
                        let body = format!(
                            "{{\"id\":\"{id}\",\"k\":\"k{}\",\"pad\":\"{}\"}}",
                            n % 5,
                            "p".repeat(200)
                        )
                        .into_bytes();
                        let (h, v) = github(&body);
                        let r = http
                            .post(format!("http://{addr}/in/gh"))
                            .header(h, v)
                            .header("x-github-delivery", &id)
                            .body(body.clone())
                            .send()
                            .await;
                        if matches!(&r, Ok(resp) if resp.status().is_success()) {
                            acked.lock().unwrap().push((id, body));
                        }
                    }
                })
            })
            .collect();
        Load { acked, stop, tasks }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<(String, Vec<u8>)> {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_inbound_load_loses_no_acknowledged_request() {
    let (db, c) = with_source("'gh', 'github', $1, ordering_key => '/k'", Some(GH_SECRET)).await;
    let rx = worker(&c, always(Reply::ok())).await;
    let env = [
        ("OUTBOXD_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_INBOUND_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("OUTBOXD_POLL_INTERVAL", "50ms"),
        ("OUTBOXD_LEASE", "3s"),
        ("OUTBOXD_REQUEST_TIMEOUT", "2s"),
    ];
    let mut sidecar = Sidecar::run(crate::OUTBOXD, &db.url, &env);
    sidecar
        .wait_started(Duration::from_secs(30))
        .await
        .expect("started");
    let addr = sidecar.inbound_addr().expect("inbound address in the log");
    let load = Load::start(addr, 8);
    wait_until(
        Duration::from_secs(30),
        "some acknowledged requests",
        || {
            let n = load.acked();
            async move { n >= 200 }
        },
    )
    .await;
    sidecar.kill9();
    let acked = load.stop().await;
    assert!(acked.len() >= 200);

    // Every acknowledged request is stored, with its exact bytes.
    let rows = c
        .query(
            "SELECT idempotency_key, body FROM outbox.inbound_requests",
            &[],
        )
        .await
        .unwrap();
    let in_db: BTreeMap<String, Vec<u8>> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (id, body) in &acked {
        assert_eq!(
            in_db.get(id),
            Some(body),
            "acknowledged {id} is stored as sent"
        );
    }
    // A new replica relays every one of them, byte for byte.
    let mut again = Sidecar::run(crate::OUTBOXD, &db.url, &env);
    again
        .wait_started(Duration::from_secs(30))
        .await
        .expect("restarted");
    let want: HashSet<Vec<u8>> = acked.iter().map(|(_, b)| b.clone()).collect();
    let relayed = rx
        .wait_for(Duration::from_secs(60), |rs| {
            let got: HashSet<&[u8]> = rs
                .iter()
                .filter(|r| r.is_2xx() && r.signature_ok)
                .map(|r| &r.body[..])
                .collect();
            want.iter().all(|b| got.contains(&b[..]))
        })
        .await;
    assert!(relayed, "every acknowledged request relayed");
    again.terminate(Duration::from_secs(10)).await;
}
