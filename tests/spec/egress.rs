//! The way out (issue 13; README "Egress proxy", "Mutual TLS to endpoints", "Event types"):
//! deliveries through a forward proxy (CONNECT for https, absolute form for http; NO_PROXY
//! goes direct), client certificates presented to endpoints that ask for them, and test
//! events carrying the catalog's example payload. Real PostgreSQL, real HTTP and TLS over
//! loopback; each test has its own fresh database.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::proxy::{Proxy, Seen};
use testkit::tls::Certs;
use testkit::tls_receiver::TlsReceiver;
use testkit::*;

use crate::console_support::{Api, TOKEN, http, start};
use crate::engine::wait_all_finished;
use crate::support::{Event, scalar_i64};

/// `outbox.add_endpoint` for every type, with the test secret and a client certificate.
async fn add_endpoint_with_cert(
    c: &tokio_postgres::Client,
    url: &str,
    client_certificate: Option<&str>,
) -> i64 {
    c.query_one(
        "SELECT outbox.add_endpoint($1, '{*}', secret => $2, client_certificate => $3)",
        &[&url, &TEST_SECRET, &client_certificate],
    )
    .await
    .expect("add_endpoint")
    .get(0)
}

/// The kinds and messages of an endpoint's attempts, oldest first.
async fn attempts_of(c: &tokio_postgres::Client, endpoint_id: i64) -> Vec<(String, String)> {
    c.query(
        "SELECT coalesce(error_kind, 'ok'), coalesce(error_message, '')
           FROM outbox.attempts WHERE endpoint_id = $1 ORDER BY id",
        &[&endpoint_id],
    )
    .await
    .expect("attempts")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn wait_for_attempt(c: &tokio_postgres::Client, endpoint_id: i64) -> (String, String) {
    wait_until(
        Duration::from_secs(20),
        "an attempt to be recorded",
        || async { !attempts_of(c, endpoint_id).await.is_empty() },
    )
    .await;
    attempts_of(c, endpoint_id)
        .await
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[tokio::test]
async fn deliveries_go_through_the_egress_proxy_and_no_proxy_hosts_go_direct() {
    let certs = Certs::new();
    let db = fresh_db().await;
    let c = db.client().await;
    let proxy = Proxy::start().await;
    // Credentials in the proxy URL: sent to the proxy, never shown.
    let proxy_url = with_credentials(&proxy.url());
    let plain = Receiver::ok(TEST_SECRET).await;
    let direct = Receiver::ok(TEST_SECRET).await;
    let tls = TlsReceiver::start(&certs, false).await;
    let via_http = add_endpoint_with_cert(&c, &plain.url(), None).await;
    // NO_PROXY names it (host and port): reached directly.
    let via_nothing = add_endpoint_with_cert(&c, &direct.url(), None).await;
    let via_connect = add_endpoint_with_cert(&c, &tls.url_for("/tls"), None).await;
    let no_proxy = format!("example.internal,{}", direct.addr());
    let ca = certs.ca();
    let engine = start(
        &db,
        &[
            "--https-proxy",
            &proxy_url,
            "--http-proxy",
            &proxy_url,
            "--no-proxy",
            &no_proxy,
            "--egress-ca-file",
            ca.to_str().unwrap(),
        ],
    )
    .await;
    Event::new("order.paid")
        .payload(json!({"id": 1}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(20)).await;

    assert_eq!(plain.count(), 1, "{:?}", attempts_of(&c, via_http).await);
    assert!(plain.requests()[0].signature_ok);
    assert_eq!(
        direct.count(),
        1,
        "{:?}",
        attempts_of(&c, via_nothing).await
    );
    assert!(
        tls.wait_for_requests(1, Duration::from_secs(5)).await,
        "{:?}",
        attempts_of(&c, via_connect).await
    );
    let seen = proxy.seen();
    proxied(&seen, "POST", &format!("http://{}/hook", plain.addr()));
    proxied(
        &seen,
        "CONNECT",
        tls.url_for("").trim_start_matches("https://"),
    );
    assert!(
        !seen
            .iter()
            .any(|s| s.target.contains(&direct.addr().to_string())),
        "NO_PROXY host went through the proxy: {seen:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");

    // The SSRF guard still judges the target through the proxy: a private literal address
    // outside OUTBOXD_ALLOW_NETWORKS is refused before anything is sent.
    let blocked = add_endpoint_with_cert(&c, "http://10.255.255.1:9/hook", None).await;
    c.execute(
        "UPDATE outbox.endpoints SET enabled = false WHERE id <> $1",
        &[&blocked],
    )
    .await
    .unwrap();
    Event::new("order.paid").publish(&c).await;
    let (kind, message) = wait_for_attempt(&c, blocked).await;
    assert_eq!(kind, "blocked_address", "{message}");
    assert_eq!(proxy.seen().len(), 2, "nothing more reached the proxy");
    // The proxy's password is in no attempt, no endpoint view and no log line we wrote.
    let messages: String = c
        .query(
            "SELECT coalesce(string_agg(error_message, ' '), '') FROM outbox.attempts",
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(!messages.contains("pr0xy-s3cret"), "{messages}");
    engine.stop().await;
}

/// An engine delivering through `proxy_url`, trusting `ca_file` next to the system's CAs.
async fn start_through(
    db: &TestDb,
    proxy_url: &str,
    ca_file: &std::path::Path,
    extra: &[&str],
) -> outboxd::Engine {
    let ca_file = ca_file.to_str().expect("a UTF-8 path");
    let mut args = vec!["--egress-proxy", proxy_url, "--egress-ca-file", ca_file];
    args.extend_from_slice(extra);
    start(db, &args).await
}

/// The standard webhooks signature of a request the TLS receiver got, checked by the
/// independent `standardwebhooks` crate.
fn signed(r: &testkit::tls_receiver::TlsRequest) -> bool {
    standardwebhooks::Webhook::new(TEST_SECRET)
        .expect("the test secret")
        .verify(&r.body, &r.headers)
        .is_ok()
}

/// `https://` in `OUTBOXD_EGRESS_PROXY`: outboxd speaks TLS to the proxy, checking its
/// certificate against the same roots as endpoints' (the system's plus
/// `OUTBOXD_EGRESS_CA_FILE`), then asks for the tunnel (or sends the absolute-form request)
/// inside that TLS.
#[tokio::test]
async fn deliveries_go_through_an_https_egress_proxy_whose_ca_is_in_the_egress_ca_file() {
    let certs = Certs::new();
    let db = fresh_db().await;
    let c = db.client().await;
    let proxy = Proxy::start_tls(&certs).await;
    let proxy_url = with_credentials(&proxy.url());
    let tls = TlsReceiver::start(&certs, false).await;
    let plain = Receiver::ok(TEST_SECRET).await;
    add_endpoint_with_cert(&c, &tls.url_for("/tls"), None).await;
    add_endpoint_with_cert(&c, &plain.url(), None).await;
    let engine = start_through(&db, &proxy_url, &certs.ca(), &[]).await;
    Event::new("order.paid")
        .payload(json!({"id": 2}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(20)).await;

    assert!(
        tls.wait_for_requests(1, Duration::from_secs(5)).await,
        "refused by the proxy: {:?}",
        proxy.refusals()
    );
    let got = tls.requests();
    assert_eq!(got[0].path, "/tls");
    assert!(signed(&got[0]), "{:?}", got[0].headers);
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"id": 2})
    );
    assert_eq!(plain.count(), 1);
    assert!(plain.requests()[0].signature_ok);

    let seen = proxy.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let connect = proxied(
        &seen,
        "CONNECT",
        tls.url_for("").trim_start_matches("https://"),
    );
    assert!(
        connect.tls,
        "the CONNECT and its credentials went in the clear"
    );
    let absolute = proxied(&seen, "POST", &format!("http://{}/hook", plain.addr()));
    assert!(absolute.tls, "the request to the proxy went in the clear");
    assert!(proxy.refusals().is_empty(), "{:?}", proxy.refusals());
    engine.stop().await;
}

/// A proxy whose certificate outboxd does not trust: the attempt fails at once, recorded
/// with kind `tls` and a message naming the proxy (credentials masked) and the certificate
/// problem; nothing reaches the endpoint, nothing is lost, and once the proxy's CA is in
/// `OUTBOXD_EGRESS_CA_FILE` a retry delivers the event.
#[tokio::test]
async fn an_https_egress_proxy_with_an_untrusted_certificate_fails_the_attempt_naming_the_proxy() {
    let certs = Certs::new();
    let proxy_certs = Certs::new(); // another CA, not in the CA file at first
    let db = fresh_db().await;
    let c = db.client().await;
    let proxy = Proxy::start_tls(&proxy_certs).await;
    let proxy_url = with_credentials(&proxy.url());
    let tls = TlsReceiver::start(&certs, false).await;
    let endpoint = add_endpoint_with_cert(&c, &tls.url_for("/tls"), None).await;
    // One attempt, then the next one an hour away: the retry below is the operator's.
    let one_attempt = ["--retry-schedule", "1h"];
    let engine = start_through(&db, &proxy_url, &certs.ca(), &one_attempt).await;
    Event::new("order.paid")
        .payload(json!({"id": 3}))
        .publish(&c)
        .await;

    let (kind, message) = wait_for_attempt(&c, endpoint).await;
    assert_eq!(kind, "tls", "{message}");
    let shown = proxy
        .url()
        .replace("https://", "https://********:********@");
    assert!(
        message.contains(&format!("egress proxy {shown}")),
        "the message names the proxy: {message}"
    );
    // E.g. "…: tunnel error: failed to create underlying connection: invalid peer
    // certificate: BadSignature (through the egress proxy https://********:********@…)":
    // both test CAs have the same name, so rustls finds the issuer and rejects its signature
    // (a real unknown CA says UnknownIssuer).
    assert!(
        message.contains("tunnel error: failed to create underlying connection")
            && message.contains("invalid peer certificate"),
        "the message names the certificate problem: {message}"
    );
    assert!(!message.contains("pr0xy-s3cret"), "{message}");
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert!(!proxy.refusals().is_empty(), "the handshake was refused");
    assert!(tls.requests().is_empty());
    let (delivery, state): (i64, String) = {
        let row = c
            .query_one(
                "SELECT id, state::text FROM outbox.deliveries WHERE endpoint_id = $1",
                &[&endpoint],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(state, "pending", "waiting for its retry: {message}");
    engine.stop().await;

    // The fix: one bundle with both CAs (the endpoint's and the proxy's), and a retry now.
    let bundle = tempfile::NamedTempFile::new().unwrap();
    let pem = [certs.ca(), proxy_certs.ca()]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    std::fs::write(bundle.path(), pem).unwrap();
    let engine = start_through(&db, &proxy_url, bundle.path(), &one_attempt).await;
    let (status, d) = Api::new(&engine)
        .post(&format!("/v1/deliveries/{delivery}/retry"), Value::Null)
        .await;
    assert_eq!(status, 200, "{d}");
    assert!(
        tls.wait_for_requests(1, Duration::from_secs(20)).await,
        "{:?}",
        attempts_of(&c, endpoint).await
    );
    assert!(signed(&tls.requests()[0]));
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
    assert!(proxy.seen()[0].tls);
    engine.stop().await;
}

/// The user name and password the tests put in proxy URLs.
const PROXY_CREDENTIALS: &str = "proxyuser:pr0xy-s3cret";

/// `scheme://proxyuser:pr0xy-s3cret@host:port`
fn with_credentials(proxy_url: &str) -> String {
    proxy_url.replace("://", &format!("://{PROXY_CREDENTIALS}@"))
}

/// The first request the proxy saw with `method`, checked: its target, and the credentials
/// a proxy checks (`Proxy-Authorization: Basic`).
fn proxied<'a>(seen: &'a [Seen], method: &str, target: &str) -> &'a Seen {
    let s = seen
        .iter()
        .find(|s| s.method == method)
        .unwrap_or_else(|| panic!("no {method}: {seen:?}"));
    assert_eq!(s.target, target, "{seen:?}");
    let expected = format!("Basic {}", base64_of(PROXY_CREDENTIALS));
    assert_eq!(
        s.proxy_authorization.as_deref(),
        Some(&*expected),
        "{seen:?}"
    );
    s
}

/// Basic auth's encoding of `user:password`.
fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn an_endpoint_presents_its_client_certificate_and_one_without_is_refused() {
    let certs = Certs::new();
    let (cert, key) = certs.client();
    let cert_dir = tempfile::tempdir().unwrap();
    // A flat directory, as the chart's projected volume mounts it: <name>.crt + <name>.key.
    std::fs::copy(&cert, cert_dir.path().join("acme-mtls.crt")).unwrap();
    std::fs::copy(&key, cert_dir.path().join("acme-mtls.key")).unwrap();
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = TlsReceiver::start(&certs, true).await;
    let with_cert = add_endpoint_with_cert(&c, &rx.url_for("/with"), Some("acme-mtls")).await;
    let without = add_endpoint_with_cert(&c, &rx.url_for("/without"), None).await;
    let missing = add_endpoint_with_cert(&c, &rx.url_for("/missing"), Some("globex")).await;
    let bad_name = c
        .execute(
            "UPDATE outbox.endpoints SET client_certificate = '../etc/passwd' WHERE id = $1",
            &[&without],
        )
        .await;
    assert!(bad_name.is_err(), "the column's CHECK refuses a path");
    let ca = certs.ca();
    let engine = start(
        &db,
        &[
            "--egress-ca-file",
            ca.to_str().unwrap(),
            "--client-cert-dir",
            cert_dir.path().to_str().unwrap(),
        ],
    )
    .await;
    Event::new("order.paid")
        .payload(json!({"id": 7}))
        .publish(&c)
        .await;

    assert!(
        rx.wait_for_requests(1, Duration::from_secs(20)).await,
        "{:?} / refused: {:?}",
        attempts_of(&c, with_cert).await,
        rx.refusals()
    );
    let got = rx.requests();
    assert_eq!(got[0].path, "/with");
    assert!(got[0].client_certificate);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body, json!({"id": 7}));

    // Without a certificate: the receiver refuses the handshake; a failed attempt is recorded.
    let (kind, message) = wait_for_attempt(&c, without).await;
    assert_eq!(kind, "tls", "{message}");
    assert!(rx.refused() >= 1);
    // A certificate whose files are not there: a failed attempt naming the file.
    let (kind, message) = wait_for_attempt(&c, missing).await;
    assert_eq!(kind, "tls", "{message}");
    assert!(
        message.contains("globex.crt") && message.contains("cannot read"),
        "{message}"
    );
    assert!(rx.requests().iter().all(|r| r.path == "/with"));
    // The receiver has answered; the outcome is recorded a moment later.
    wait_until(
        Duration::from_secs(10),
        "the mTLS delivery recorded",
        || async {
            scalar_i64(
                &c,
                "SELECT count(*) FROM outbox.deliveries WHERE state = 'succeeded'",
            )
            .await
                == 1
        },
    )
    .await;

    // The admin API shows, sets and checks the name (never a file's content).
    let api = Api::new(&engine);
    let (status, e) = api.get(&format!("/v1/endpoints/{with_cert}")).await;
    assert_eq!(status, 200);
    assert_eq!(e["client_certificate"], "acme-mtls");
    let patch = |body: Value| {
        let url = format!("{}/v1/endpoints/{without}", api.base);
        async move {
            let r = http()
                .patch(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, e) = patch(json!({"client_certificate": "acme-mtls"})).await;
    assert_eq!(
        (status.as_u16(), &e["client_certificate"]),
        (200, &json!("acme-mtls"))
    );
    let (status, e) = patch(json!({"client_certificate": "../secrets"})).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "client_certificate");
    let (status, e) = patch(json!({"client_certificate": null})).await;
    assert_eq!(
        (status.as_u16(), &e["client_certificate"]),
        (200, &Value::Null)
    );
    let (status, e) = api
        .post(
            "/v1/endpoints",
            json!({"url": rx.url_for("/new"), "client_certificate": "acme-mtls"}),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(e["client_certificate"], "acme-mtls");
    engine.stop().await;
}

/// What an SRE alerts on before mutual TLS breaks: each certificate enabled endpoints name has
/// `outboxd_client_certificate_usable` (1 or 0) and, when usable, its expiry. A fixed file
/// shows at the next scrape.
#[tokio::test]
async fn client_certificates_show_their_expiry_and_whether_they_load_in_metrics() {
    let certs = Certs::new();
    let (cert, key) = certs.client();
    let not_after = testkit::tls::not_after(&cert) as f64;
    let cert_dir = tempfile::tempdir().unwrap();
    let put = |name: &str| {
        std::fs::copy(&cert, cert_dir.path().join(format!("{name}.crt"))).unwrap();
        std::fs::copy(&key, cert_dir.path().join(format!("{name}.key"))).unwrap();
    };
    put("acme-mtls");
    put("retired");
    std::fs::write(cert_dir.path().join("broken.crt"), "not a certificate").unwrap();
    std::fs::copy(&key, cert_dir.path().join("broken.key")).unwrap();
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = TlsReceiver::start(&certs, true).await;
    add_endpoint_with_cert(&c, &rx.url_for("/a"), Some("acme-mtls")).await;
    add_endpoint_with_cert(&c, &rx.url_for("/b"), Some("broken")).await;
    // Named only by a disabled endpoint: no series.
    let retired = add_endpoint_with_cert(&c, &rx.url_for("/r"), Some("retired")).await;
    c.execute(
        "UPDATE outbox.endpoints SET enabled = false WHERE id = $1",
        &[&retired],
    )
    .await
    .unwrap();
    let engine = start(
        &db,
        &["--client-cert-dir", cert_dir.path().to_str().unwrap()],
    )
    .await;

    let m = parse_metrics(&crate::engine::metrics_text(&engine).await);
    let usable = |n: &str| format!("outboxd_client_certificate_usable{{certificate=\"{n}\"}}");
    let expiry = |n: &str| {
        format!("outboxd_client_certificate_expiry_timestamp_seconds{{certificate=\"{n}\"}}")
    };
    assert_eq!(m.get(&usable("acme-mtls")), Some(&1.0), "{m:?}");
    assert_eq!(m.get(&expiry("acme-mtls")), Some(&not_after), "{m:?}");
    assert_eq!(m.get(&usable("broken")), Some(&0.0), "{m:?}");
    assert_eq!(m.get(&expiry("broken")), None, "{m:?}");
    assert!(
        !m.keys().any(|k| k.contains("retired")),
        "a certificate no enabled endpoint names has no series: {m:?}"
    );

    // The Secret is fixed: the next scrape says so, without a restart.
    put("broken");
    let page = crate::engine::metrics_text(&engine).await;
    let m = parse_metrics(&page);
    assert_eq!(m.get(&usable("broken")), Some(&1.0), "{page}");
    assert_eq!(m.get(&expiry("broken")), Some(&not_after), "{page}");
    engine.stop().await;
}

#[tokio::test]
async fn a_test_event_carries_the_catalogs_example_of_the_type_asked_for() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_endpoint_with_cert(&c, &rx.url(), None).await;
    c.execute(
        "SELECT outbox.register_event_type('order.paid', 'An order was paid.',
                    example => '{\"amount\": 1500, \"currency\": \"EUR\"}')",
        &[],
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let path = format!("/v1/endpoints/{ep}/test");

    let (status, t) = api.post(&path, json!({"event_type": "order.paid"})).await;
    assert_eq!(status, 202, "{t}");
    assert_eq!(t["example_of"], "order.paid");
    // No type, or one without an example: the generic payload (naming the type asked for).
    let (_, plain) = api.post(&path, Value::Null).await;
    assert_eq!(plain["example_of"], Value::Null);
    let (_, unknown) = api.post(&path, json!({"event_type": "order.lost"})).await;
    assert_eq!(unknown["example_of"], Value::Null);
    let (status, e) = api.post(&path, json!({"event_type": "order.*"})).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["field"], "event_type");

    assert!(rx.wait_for_count(3, Duration::from_secs(20)).await);
    let body_of = |id: &Value| {
        let r = rx
            .requests()
            .into_iter()
            .find(|r| Value::String(r.id.clone()) == *id)
            .expect("delivered");
        serde_json::from_slice::<Value>(&r.body).unwrap()
    };
    assert_eq!(
        body_of(&t["event_id"]),
        json!({"amount": 1500, "currency": "EUR"})
    );
    assert_eq!(body_of(&plain["event_id"])["type"], "outboxd.test");
    let generic = body_of(&unknown["event_id"]);
    assert_eq!(
        (&generic["type"], &generic["event_type"]),
        (&json!("outboxd.test"), &json!("order.lost"))
    );
    engine.stop().await;
}
