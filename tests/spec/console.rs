//! The console over plain HTTP (issue 10's security bar): sign-in and sessions, cookie
//! attributes, CSRF, the Content-Security-Policy and framing, escaping of attacker-controlled
//! text, sign-in links, and `outboxd demo`'s link. What a real browser does with all of it is
//! in `browser.rs`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;
use testkit::*;

use crate::OUTBOXD;
use crate::console_support::*;
use crate::support::Event;

/// `application/x-www-form-urlencoded` bodies, as a browser's forms send them.
trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

/// A signed-in browser, as far as HTTP goes: the session cookie and the last page's CSRF
/// token.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    let set = headers.get(SET_COOKIE)?.to_str().ok()?;
    let (pair, _) = set.split_once(';')?;
    Some(pair.to_owned())
}

/// The CSRF token in a page's forms.
fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

impl Console {
    async fn sign_in(base: &str) -> Console {
        let http = http();
        let resp = http
            .post(format!("{base}/ui/login"))
            .form_body(&[("token", TOKEN), ("next", "/ui/events")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = cookie_of(resp.headers()).expect("a session cookie");
        Console {
            http,
            base: base.to_owned(),
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form_body(form);
        for (k, v) in extra {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }
}

/// An attribute like ` onclick=` in markup.
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

#[tokio::test]
async fn without_a_valid_session_every_page_is_the_sign_in_page() {
    let db = fresh_db().await;
    let engine = start(&db, &[]).await;
    let base = format!("http://{}", engine.listen_addr);
    let http = http();
    for path in [
        "/ui/events",
        "/ui/events/x",
        "/ui/endpoints",
        "/ui/endpoints/1",
        "/ui/deliveries/1",
    ] {
        for cookie in [
            "",
            "outboxd_console=v1.op.9999999999.abc.def",
            "outboxd_console=garbage",
        ] {
            let resp = http
                .get(format!("{base}{path}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{path} {cookie}");
            let to = resp.headers()[LOCATION].to_str().unwrap().to_owned();
            assert!(to.starts_with("/ui/login?next=%2Fui%2F"), "{path}: {to}");
        }
    }
    let resp = http
        .post(format!("{base}/ui/deliveries/1/retry"))
        .form_body(&[("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.text().await.unwrap().contains("name=\"token\""),
        "the sign-in page"
    );
    let login = http.get(format!("{base}/ui/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let html = login.text().await.unwrap();
    assert!(html.contains("type=\"password\" name=\"token\""), "{html}");

    // A session of another admin token (the token was changed) is no session.
    let other_db = fresh_db().await;
    let config = engine_config(
        &other_db,
        &["--admin-token", "a-different-admin-token-0123456789"],
    );
    let other = outboxd::Engine::start(config).await.unwrap();
    let stale = Console::sign_in(&base).await;
    let resp = http
        .get(format!("http://{}/ui/events", other.listen_addr))
        .header("cookie", &stale.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    other.stop().await;
    engine.stop().await;
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_expiring_cookie() {
    let db = fresh_db().await;
    let engine = start(&db, &["--console-session-ttl", "2h"]).await;
    let base = format!("http://{}", engine.listen_addr);
    let http = http();
    let wrong = http
        .post(format!("{base}/ui/login"))
        .form_body(&[("token", "not-the-token-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let right = http
        .post(format!("{base}/ui/login"))
        .form_body(&[("token", TOKEN), ("next", "https://evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        right.headers()[LOCATION],
        "/ui/events",
        "never off the console"
    );
    let set = right.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=7200"] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let behind_tls = http
        .post(format!("{base}/ui/login"))
        .header("x-forwarded-proto", "https")
        .form_body(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(
        behind_tls.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    let cross_site = http
        .post(format!("{base}/ui/login"))
        .header("origin", "https://evil.example")
        .form_body(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross_site.status(),
        StatusCode::FORBIDDEN,
        "no sign-in from another site"
    );

    let console = Console::sign_in(&base).await;
    let (status, _, html) = console.get("/ui/events").await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_in(&html);
    let (status, headers, _) = console.post("/ui/logout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    engine.stop().await;
}

#[tokio::test]
async fn every_console_response_has_a_strict_csp_and_is_not_frameable() {
    let db = fresh_db().await;
    let engine = start(&db, &[]).await;
    let base = format!("http://{}", engine.listen_addr);
    let console = Console::sign_in(&base).await;
    let (_, _, html) = console.get("/ui/events").await;
    let js = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for path in [
        "/ui/login",
        "/ui/events",
        "/ui/endpoints",
        "/ui/nowhere",
        js.as_str(),
    ] {
        let (status, h, body) = console.get(path).await;
        // (/ui/login sends a signed-in browser on to the event log.)
        assert!(
            status.is_success()
                || status == StatusCode::NOT_FOUND
                || status == StatusCode::SEE_OTHER,
            "{path}: {status}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        if path.starts_with("/ui/") && !path.starts_with("/ui/assets") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
            assert!(
                !has_event_handler(&body),
                "{path}: no inline event handlers"
            );
            assert!(!body.contains("<script>"), "{path}: no inline script");
            assert!(!body.contains("style="), "{path}: no inline style");
        }
    }
    engine.stop().await;

    let engine = start(
        &db,
        &["--console-frame-ancestors", "https://ops.example.com"],
    )
    .await;
    let resp = http()
        .get(format!("http://{}/ui/login", engine.listen_addr))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors https://ops.example.com"),
        "{csp}"
    );
    assert!(resp.headers().get("x-frame-options").is_none());
    engine.stop().await;
}

#[tokio::test]
async fn actions_without_the_sessions_csrf_token_or_from_another_site_are_refused() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Arc::new(AtomicBool::new(false));
    let flag = ok.clone();
    let rx = Receiver::start(
        TEST_SECRET,
        script(move |_| {
            if flag.load(Ordering::SeqCst) {
                Reply::ok()
            } else {
                Reply::status(500)
            }
        }),
    )
    .await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &["--max-age", "200ms"]).await;
    let base = format!("http://{}", engine.listen_addr);
    let id = Event::new("order.paid").publish(&c).await;
    wait_settled(&c).await;
    let d = delivery_of(&c, &id, ep).await;
    assert_eq!(status_of(&c, d).await, "dead");
    ok.store(true, Ordering::SeqCst);

    let console = Console::sign_in(&base).await;
    let (status, _, page) = console.get(&format!("/ui/events/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_in(&page);
    let other = Console::sign_in(&base).await;
    let (_, _, other_page) = other.get("/ui/events").await;
    let others_csrf = csrf_in(&other_page);
    let action = format!("/ui/deliveries/{d}/retry");
    for (form, headers, why) in [
        (vec![], vec![], "no token"),
        (vec![("csrf", "forged")], vec![], "a forged token"),
        (
            vec![("csrf", others_csrf.as_str())],
            vec![],
            "another session's token",
        ),
        (
            vec![("csrf", csrf.as_str())],
            vec![("sec-fetch-site", "cross-site")],
            "another site",
        ),
        (
            vec![("csrf", csrf.as_str())],
            vec![("origin", "https://evil.example")],
            "another origin",
        ),
    ] {
        let (status, _, _) = console.post(&action, &form, &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}");
        assert_eq!(status_of(&c, d).await, "dead", "{why}: nothing happened");
    }
    let (status, headers, _) = console
        .post(
            &action,
            &[("csrf", &csrf), ("back", &format!("/ui/events/{id}"))],
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[LOCATION],
        format!("/ui/events/{id}?done=retried#delivery-{d}").as_str()
    );
    wait_until(
        Duration::from_secs(10),
        "the retried delivery succeeded",
        || async { status_of(&c, d).await == "succeeded" },
    )
    .await;
    engine.stop().await;
}

#[tokio::test]
async fn attacker_controlled_text_is_escaped_on_every_page() {
    let db = fresh_db().await;
    let c = db.client().await;
    const EVIL: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let rx = Receiver::start(
        TEST_SECRET,
        always(
            Reply::status(500).with_body(format!("{EVIL}<a href=\"javascript:alert(3)\">x</a>")),
        ),
    )
    .await;
    let engine = start(&db, &["--max-age", "200ms"]).await;
    let api = Api::new(&engine);
    let (status, created) = api
        .post(
            "/v1/endpoints",
            json!({"url": format!("{}?q=\"><script>alert(4)</script>", rx.url()),
                   "description": EVIL, "event_types": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ep = created["id"].as_i64().unwrap();
    let key = format!("order:\u{202E}gnp.exe{EVIL}");
    let id = Event::new(&format!("x{EVIL}"))
        .key(&key)
        .payload(json!({"html": EVIL, "link": "javascript:alert(5)", "close": "</pre><script>alert(6)</script>"}))
        .headers(json!({"x-evil": "\"><script>alert(7)</script>"}))
        .publish(&c)
        .await;
    wait_settled(&c).await;

    let console = Console::sign_in(&format!("http://{}", engine.listen_addr)).await;
    let encoded = id.clone();
    for path in [
        "/ui/events".to_owned(),
        "/ui/events?q=type:x*".to_owned(),
        format!("/ui/events/{encoded}"),
        "/ui/endpoints".to_owned(),
        format!("/ui/endpoints/{ep}"),
        format!("/ui/events?q={}", "%3Cscript%3Ealert(8)%3C/script%3E"),
    ] {
        let (status, _, html) = console.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        for raw in [
            "<script>alert",
            "<img src=x",
            "href=\"javascript:",
            "\u{202E}",
        ] {
            assert!(!html.contains(raw), "{path} shows {raw:?} unescaped");
        }
    }
    let (_, _, detail) = console.get(&format!("/ui/events/{encoded}")).await;
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "shown, escaped"
    );
    assert!(
        detail.contains("⟨U+202E⟩"),
        "the direction override is made visible"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_sign_in_link_works_once() {
    let db = fresh_db().await;
    let engine = start(&db, &[]).await;
    let base = format!("http://{}", engine.listen_addr);
    let link = outboxd::console_link(TOKEN, &base);
    let http = http();
    let first = http.get(&link).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = cookie_of(first.headers()).expect("signed in");
    let page = http
        .get(format!("{base}/ui/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let again = http.get(&link).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "each link works once"
    );
    let forged = http.get(format!("{link}x")).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let other = outboxd::console_link("another-admin-token-0123456789", &base);
    assert_eq!(
        http.get(&other).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    engine.stop().await;
}

#[tokio::test]
async fn the_demo_prints_a_signed_in_console_link_and_leaves_a_dead_delivery_to_retry() {
    let db = fresh_db().await;
    let mut child = Command::new(OUTBOXD)
        .args(["demo", "--events", "0"])
        .env("DATABASE_URL", &db.url)
        .env_remove("OUTBOXD_ADMIN_TOKEN")
        .env_remove("OUTBOXD_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("outboxd demo starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Keep reading to the end: the demo must not write into a closed pipe.
            let _ = tx.send(line);
        }
    });
    let mut link = None;
    while link.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo prints its console link within a minute");
        if let Some(at) = line.find("http://")
            && line.contains("/ui/login/link?token=")
        {
            link = Some(line[at..].trim().to_owned());
        }
    }
    let link = link.unwrap();
    let base = link.split("/ui/").next().unwrap().to_owned();
    let http = http();
    let signed_in = http.get(&link).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let cookie = cookie_of(signed_in.headers()).unwrap();
    let console = Console { http, base, cookie };
    let (_, _, page) = console.get("/ui/events?status=dead").await;
    assert!(page.contains("invoice.refunded"), "{page}");
    let c = db.client().await;
    let d: i64 = c
        .query_one(
            "SELECT d.id FROM outbox.deliveries d WHERE d.state = 'dead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let event_id: String = c
        .query_one(
            "SELECT e.event_id FROM outbox.events e JOIN outbox.deliveries d ON d.event_pk = e.id WHERE d.id = $1",
            &[&d],
        )
        .await
        .unwrap()
        .get(0);
    let (_, _, detail) = console.get(&format!("/ui/events/{event_id}")).await;
    assert!(
        detail.contains("refund service unavailable"),
        "the receiver's answer"
    );
    let csrf = csrf_in(&detail);
    let (status, _, _) = console
        .post(
            &format!("/ui/deliveries/{d}/retry"),
            &[("csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    wait_until(
        Duration::from_secs(15),
        "the demo's dead delivery succeeded",
        || async { status_of(&c, d).await == "succeeded" },
    )
    .await;
    // SIGTERM ends the demo cleanly.
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
