//! The console in a real browser: headless Chromium driven through `chromedriver`
//! (WebDriver, with `fantoccini`). What an operator does: sign in, find a dead delivery by its
//! event_id, open it and read the receiver's error, press retry and watch it succeed without
//! reloading, replay to a new endpoint and see the events arrive in order; and attacker-made
//! text that never runs.
//!
//! Needs `chromium` and `chromium-driver` (Debian; `.ci/run` installs them). Without
//! `chromedriver` the tests say so loudly and pass, unless `OUTBOXD_REQUIRE_BROWSER` is set
//! (CI sets it), when they fail. `OUTBOXD_SCREENSHOTS=<dir>` saves the screenshots the README
//! shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use testkit::*;

use crate::console_support::*;
use crate::support::Event;

/// `chromedriver` on a free port, with a fresh profile directory; killed on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str], fallbacks: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    fallbacks.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A browser session, or `None` (after saying so) when chromedriver is not installed.
async fn browser() -> Option<(Driver, Client)> {
    let Some(chromedriver) = find_program(&["chromedriver"], &["/usr/lib/chromium/chromedriver"])
    else {
        let message = "chromedriver is not installed (apt-get install chromium chromium-driver): \
                       the browser tests of the console did NOT run";
        if std::env::var_os("OUTBOXD_REQUIRE_BROWSER").is_some() {
            panic!("{message}, and OUTBOXD_REQUIRE_BROWSER is set");
        }
        eprintln!(
            "\n{}\n*** SKIPPED: {message} ***\n{}\n",
            "*".repeat(80),
            "*".repeat(80)
        );
        return None;
    };
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"], &[])
        .expect("chromedriver is installed but no chromium");
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let profile = tempfile::tempdir().expect("a profile directory");
    let driver = Driver {
        child,
        port,
        profile,
    };
    let status = format!("http://127.0.0.1:{}/status", driver.port);
    wait_until(
        Duration::from_secs(20),
        "chromedriver answering",
        || async { http().get(&status).send().await.is_ok() },
    )
    .await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                format!("--user-data-dir={}", driver.profile.path().display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session");
    Some((driver, client))
}

/// Saves a screenshot when `OUTBOXD_SCREENSHOTS` names a directory.
async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("OUTBOXD_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.expect("a screenshot");
    let path = Path::new(&dir).join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Waits (polling the page through WebDriver, never reloading it) until `selector` has
/// `attribute` = `value`.
async fn wait_for_attr(browser: &Client, selector: &str, attribute: &str, value: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < end {
        if let Ok(e) = browser.find(Locator::Css(selector)).await {
            last = e.attr(attribute).await.ok().flatten();
            if last.as_deref() == Some(value) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{selector} [{attribute}] is {last:?} after 20 s, not {value:?}");
}

/// Clicks the element `css` selects (panics naming it when there is none).
async fn click(browser: &Client, css: &str) {
    let element = browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    element
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn sign_in(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/ui/events")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/ui/login",
        "a new browser gets the sign-in page"
    );
    browser
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap()
        .send_keys(TOKEN)
        .await
        .unwrap();
    click(browser, "form[action='/ui/login'] button[type=submit]").await;
    wait_until(
        Duration::from_secs(10),
        "the event log after signing in",
        || async {
            browser
                .current_url()
                .await
                .is_ok_and(|u| u.path() == "/ui/events")
        },
    )
    .await;
}

/// Fails events whose payload says `"fail": true` (with a JSON error body) until `ok`.
async fn picky_receiver(ok: Arc<AtomicBool>) -> Receiver {
    Receiver::start(
        TEST_SECRET,
        script(move |r| {
            let fail = serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["fail"] == true);
            if fail && !ok.load(Ordering::SeqCst) {
                Reply::status(500).with_body("{\"error\": \"inventory service unavailable\"}")
            } else {
                Reply::ok()
            }
        }),
    )
    .await
}

#[tokio::test]
async fn an_operator_retries_a_dead_delivery_and_replays_to_a_new_endpoint_in_a_browser() {
    let Some((_driver, browser)) = browser().await else {
        return;
    };
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Arc::new(AtomicBool::new(false));
    let rx = picky_receiver(ok.clone()).await;
    let ep = add_endpoint(&c, &rx.url(), &["order.*"], Some("acme")).await;
    let engine = start(&db, &["--max-age", "1h"]).await;
    let api = Api::new(&engine);
    let base = api.base.clone();
    for seq in 0..4 {
        for key in ["order:1", "order:2", "order:3"] {
            Event::new(
                [
                    "order.created",
                    "order.paid",
                    "order.packed",
                    "order.shipped",
                ][seq],
            )
            .key(key)
            .tenant("acme")
            .payload(json!({"r": key, "seq": seq}))
            .publish(&c)
            .await;
        }
    }
    // Published two hours ago: older than the max age, so its first failure is its last.
    let dead_event: String = c
        .query_one(
            "INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, created_at)
             VALUES ('order.refunded', 'order:7', 'acme', '{\"r\": \"order:7\", \"seq\": 0, \"fail\": true}',
                     now() - interval '2 hours')
             RETURNING event_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    wait_settled(&c).await;
    let dead = delivery_of(&c, &dead_event, ep).await;
    assert_eq!(status_of(&c, dead).await, "dead");

    // 1. Sign in.
    sign_in(&browser, &base).await;
    screenshot(&browser, "console-event-log.png").await;

    // 2. Find the dead delivery by its event_id.
    let q = browser.find(Locator::Css("input[name=q]")).await.unwrap();
    q.send_keys(&dead_event).await.unwrap();
    click(&browser, "form.search button[type=submit]").await;
    let row = format!("tr[data-event-id='{dead_event}']");
    wait_for_attr(
        &browser,
        &format!("{row} [data-delivery-id='{dead}']"),
        "data-state",
        "dead",
    )
    .await;
    let rows = browser
        .find_all(Locator::Css("tr[data-event-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the search found that one event");

    // 3. Open it and see the receiver's error.
    click(&browser, &format!("{row} td a")).await;
    let delivery = format!("[data-delivery-id='{dead}']");
    wait_for_attr(&browser, &delivery, "data-state", "dead").await;
    let text = browser
        .find(Locator::Css(&delivery))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("inventory service unavailable"), "{text}");
    assert!(text.contains("500"), "{text}");
    screenshot(&browser, "console-event.png").await;

    // 4. Press retry (and confirm in the dialog, which says what happens to ordering).
    ok.store(true, Ordering::SeqCst);
    click(&browser, &format!("{delivery} [data-action=retry]")).await;
    let dialog = browser.find(Locator::Css("dialog[open]")).await.unwrap();
    let says = dialog.text().await.unwrap();
    assert!(
        says.contains("lane"),
        "the confirmation speaks of ordering: {says}"
    );
    click(&browser, "dialog[open] [data-confirm]").await;

    // 5. See it succeed, without reloading by hand.
    wait_for_attr(&browser, &delivery, "data-state", "succeeded").await;
    assert_eq!(status_of(&c, dead).await, "succeeded");

    // 6. Replay to a new endpoint (created disabled) and see the events arrive in order.
    let rx2 = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_millis(10))),
    )
    .await;
    let (_, created) = api
        .post(
            "/v1/endpoints",
            json!({"url": rx2.url(), "tenant_id": "acme", "enabled": false,
                   "event_types": ["order.*"], "secret": TEST_SECRET, "description": "the new subscriber"}),
        )
        .await;
    let new_ep = created["id"].as_i64().expect("created");
    browser.goto(&format!("{base}/ui/endpoints")).await.unwrap();
    screenshot(&browser, "console-endpoints.png").await;
    browser
        .goto(&format!("{base}/ui/endpoints/{new_ep}"))
        .await
        .unwrap();
    click(&browser, "[data-action=replay]").await;
    let since = (chrono::Utc::now() - chrono::Duration::hours(3))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    browser
        .execute(
            "document.querySelector('dialog[open] input[name=since]').value = arguments[0];",
            vec![json!(since)],
        )
        .await
        .unwrap();
    click(&browser, "dialog[open] input[name=enable]").await;
    click(&browser, "dialog[open] [data-confirm]").await;
    wait_until(Duration::from_secs(20), "the replay's notice", || async {
        match browser.find(Locator::Css(".notice")).await {
            Ok(n) => n
                .text()
                .await
                .is_ok_and(|t| t.contains("Replay queued 13 deliveries")),
            Err(_) => false,
        }
    })
    .await;
    assert!(rx2.wait_for_count(13, Duration::from_secs(20)).await);
    let mut seqs: HashMap<String, Vec<i64>> = HashMap::new();
    for r in rx2.requests() {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        seqs.entry(v["r"].as_str().unwrap().to_owned())
            .or_default()
            .push(v["seq"].as_i64().unwrap());
    }
    for key in ["order:1", "order:2", "order:3"] {
        assert_eq!(seqs[key], [0, 1, 2, 3], "{key} in order");
    }
    assert_eq!(seqs["order:7"], [0]);
    browser.close().await.unwrap();
    engine.stop().await;
}

#[tokio::test]
async fn attacker_controlled_text_never_runs_in_the_browser() {
    let Some((_driver, browser)) = browser().await else {
        return;
    };
    let db = fresh_db().await;
    let c = db.client().await;
    let evil = |n: u32| {
        format!(
            "<img src=x onerror=\"window.__xss={n};alert({n})\"><script>window.__xss={n}</script>\
             <svg onload=\"window.__xss={n}\"></svg><a href=\"javascript:window.__xss={n}\">x</a>"
        )
    };
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(500).with_body(evil(1)))).await;
    let engine = start(&db, &["--max-age", "200ms"]).await;
    let api = Api::new(&engine);
    let (_, created) = api
        .post("/v1/endpoints", json!({"url": rx.url(), "all_tenants": true, "event_types": ["*"], "description": evil(2)}))
        .await;
    let ep = created["id"].as_i64().unwrap();
    let event = Event::new(&format!("x{}", evil(3)))
        .key(&format!("\u{202E}{}", evil(4)))
        .tenant(&evil(5))
        .payload(json!({"a": evil(6), "b": "</pre><script>window.__xss=7</script>"}))
        .headers(json!({"x-evil": evil(8)}))
        .publish(&c)
        .await;
    wait_settled(&c).await;
    sign_in(&browser, &api.base).await;
    let encoded: String = event
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    for path in [
        "/ui/events".to_owned(),
        format!("/ui/events/{encoded}"),
        "/ui/endpoints".to_owned(),
        format!("/ui/endpoints/{ep}"),
        format!(
            "/ui/events?q={}",
            "%3Cimg%20src%3Dx%20onerror%3Dalert(9)%3E"
        ),
    ] {
        browser.goto(&format!("{}{path}", api.base)).await.unwrap();
        let html = browser.source().await.unwrap();
        assert!(html.contains("outboxd"), "{path} rendered");
        let ran = browser
            .execute("return window.__xss === undefined", vec![])
            .await
            .unwrap();
        assert_eq!(ran, json!(true), "{path}: attacker text ran");
        assert!(
            browser.get_alert_text().await.is_err(),
            "{path}: an alert is open"
        );
        let links = browser
            .execute(
                "return [...document.querySelectorAll('a[href]')].filter(a => a.href.startsWith('javascript:')).length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(links, json!(0), "{path}: a javascript: link");
    }
    browser.close().await.unwrap();
    engine.stop().await;
}

/// A page of "the application" at `addr` (reachable as `http://127.0.0.1:port` and
/// `http://localhost:port`, two origins): `/app?src=<url>` shows `<url>` in an iframe and
/// marks the body `data-loaded` once the frame has loaded (whatever it shows).
async fn app_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::extract::Query;
    use axum::response::Html;
    #[derive(serde::Deserialize)]
    struct Src {
        src: String,
    }
    let app = axum::Router::new().route(
        "/app",
        axum::routing::get(|Query(q): Query<Src>| async move {
            let src = q.src.replace('&', "&amp;").replace('"', "&quot;");
            Html(format!(
                "<!doctype html><html><body><h1>Acme's product</h1>\
                 <iframe id=\"portal\" width=\"1200\" height=\"800\" src=\"{src}\" \
                 onload=\"document.body.dataset.loaded = '1'\"></iframe></body></html>"
            ))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

fn app_url(origin: &str, src: &str) -> String {
    let src: String = url::form_urlencoded::byte_serialize(src.as_bytes()).collect();
    format!("{origin}/app?src={src}")
}

/// Waits until the app page's frame has loaded, then enters it.
async fn enter_portal_frame(browser: &Client) {
    wait_for_attr(browser, "body", "data-loaded", "1").await;
    browser.enter_frame(0).await.unwrap();
}

#[tokio::test]
async fn a_tenant_manages_its_webhooks_in_a_portal_framed_by_the_app_and_nowhere_else() {
    let Some((_driver, browser)) = browser().await else {
        return;
    };
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Arc::new(AtomicBool::new(false));
    let old = picky_receiver(ok.clone()).await;
    let fresh = Receiver::ok(TEST_SECRET).await;
    let ep_a = add_endpoint(&c, &old.url(), &["order.*"], Some("acme")).await;
    let ep_b = add_endpoint(&c, &fresh.url(), &["order.*"], Some("globex")).await;
    let (app, _app_task) = app_server().await;
    let allowed = format!("http://127.0.0.1:{}", app.port());
    let disallowed = format!("http://localhost:{}", app.port());
    let engine = start(
        &db,
        &[
            "--max-age",
            "1h",
            "--portal-key",
            "portal-key-for-browser-tests-0123456789",
            "--portal-frame-ancestors",
            &allowed,
        ],
    )
    .await;
    let api = Api::new(&engine);
    // The catalog documents order.paid; its description carries HTML, shown as text.
    let (status, _) = api
        .put(
            "/v1/event-types/order.paid",
            json!({"description": "An order was <b>paid</b>.",
                   "example": {"amount": 1500, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(status, 201);
    Event::new("order.paid").tenant("acme").publish(&c).await;
    let dead_event: String = c
        .query_one(
            "INSERT INTO outbox.events (event_type, resource_key, tenant_id, payload, created_at)
             VALUES ('order.refunded', 'order:7', 'acme', '{\"fail\": true}', now() - interval '2 hours')
             RETURNING event_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let ev_b = Event::new("order.paid").tenant("globex").publish(&c).await;
    wait_settled(&c).await;
    let dead = delivery_of(&c, &dead_event, ep_a).await;
    assert_eq!(status_of(&c, dead).await, "dead");
    let d_b = delivery_of(&c, &ev_b, ep_b).await;
    let portal_link = |brand: &'static str| {
        let api = &api;
        async move {
            let (_, l) = api
                .post(
                    "/v1/portal-links",
                    json!({"tenant_id": "acme", "brand": brand}),
                )
                .await;
            l["url"].as_str().expect("a link").to_owned()
        }
    };

    // 1. The app's page (another origin, allowed) frames acme's portal.
    browser
        .goto(&app_url(&allowed, &portal_link("Acme Hooks").await))
        .await
        .unwrap();
    enter_portal_frame(&browser).await;
    let brand = browser
        .find(Locator::Css("a.brand[data-portal=tenant]"))
        .await;
    let brand = brand
        .expect("the portal inside the frame")
        .text()
        .await
        .unwrap();
    assert_eq!(brand, "Acme Hooks");

    // 2. Add an endpoint, with a type seen for acme.
    let rx = Receiver::ok(TEST_SECRET).await;
    click(&browser, "a.brand").await; // the event log, in the frame
    browser
        .find(Locator::LinkText("Endpoints"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&browser, "[data-action=add-endpoint]").await;
    // Each offered type the catalog documents shows its description and example, as text.
    let documented = "[data-event-type='order.paid']";
    let description = browser
        .find(Locator::Css(&format!("{documented} [data-description]")))
        .await
        .expect("order.paid's description")
        .text()
        .await
        .unwrap();
    assert!(
        description.contains("An order was <b>paid</b>."),
        "{description}"
    );
    assert!(
        browser
            .find(Locator::Css(&format!("{documented} b")))
            .await
            .is_err(),
        "the description's HTML was rendered"
    );
    click(&browser, &format!("{documented} details summary")).await;
    let example = browser
        .find(Locator::Css(&format!("{documented} [data-example]")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(example.contains("\"amount\": 1500"), "{example}");
    browser
        .find(Locator::Css("input[name=url]"))
        .await
        .unwrap()
        .send_keys(&rx.url())
        .await
        .unwrap();
    click(&browser, "input[name=event_types][value='order.paid']").await;
    click(&browser, "[data-action=save-endpoint]").await;
    wait_until(
        Duration::from_secs(10),
        "the new endpoint's page",
        || async { browser.find(Locator::Css("#created")).await.is_ok() },
    )
    .await;
    let created = browser.find(Locator::Css("#created")).await.unwrap();
    let new_ep: i64 = created
        .attr("data-endpoint-id")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let owner: Option<String> = c
        .query_one(
            "SELECT tenant_id FROM outbox.endpoints WHERE id = $1",
            &[&new_ep],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner.as_deref(), Some("acme"));

    // 3. Send a test event of order.paid: the receiver gets the catalog's example; it
    // succeeds on the page.
    click(&browser, "#created a").await;
    click(&browser, "[data-action=test]").await;
    browser
        .find(Locator::Css("dialog[open] input[name=event_type]"))
        .await
        .unwrap()
        .send_keys("order.paid")
        .await
        .unwrap();
    click(&browser, "dialog[open] [data-confirm]").await;
    assert!(
        rx.wait_for_count(1, Duration::from_secs(20)).await,
        "the test event arrived"
    );
    let sent: serde_json::Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    assert_eq!(sent, json!({"amount": 1500, "currency": "EUR"}));
    wait_for_attr(&browser, "[data-delivery-id]", "data-state", "succeeded").await;

    // 4. Rotate the secret.
    click(&browser, &format!("a[href='/ui/endpoints/{new_ep}']")).await;
    click(&browser, "[data-action=rotate]").await;
    click(&browser, "dialog[open] [data-confirm]").await;
    wait_until(Duration::from_secs(10), "the new secret shown", || async {
        match browser.find(Locator::Css("p.secret")).await {
            Ok(p) => p.text().await.is_ok_and(|t| t.starts_with("whsec_")),
            Err(_) => false,
        }
    })
    .await;
    let secrets: i32 = c
        .query_one(
            "SELECT cardinality(secrets) FROM outbox.endpoints WHERE id = $1",
            &[&new_ep],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(secrets, 2, "rotating added a secret");

    // 5. Retry a dead delivery, found by its event_id.
    click(&browser, "a.brand").await;
    browser
        .find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys(&dead_event)
        .await
        .unwrap();
    click(&browser, "form.search button[type=submit]").await;
    click(&browser, &format!("tr[data-event-id='{dead_event}'] td a")).await;
    let delivery = format!("[data-delivery-id='{dead}']");
    wait_for_attr(&browser, &delivery, "data-state", "dead").await;
    ok.store(true, Ordering::SeqCst);
    click(&browser, &format!("{delivery} [data-action=retry]")).await;
    click(&browser, "dialog[open] [data-confirm]").await;
    wait_for_attr(&browser, &delivery, "data-state", "succeeded").await;

    // 6. B's delivery, from inside A's portal: not found.
    let status = browser
        .execute(
            "return fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual'}).then(r => r.status)",
            vec![json!(format!("/ui/deliveries/{d_b}"))],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(404), "B's delivery from A's portal");
    browser
        .execute(
            "location.href = arguments[0]",
            vec![json!(format!("/ui/events/{ev_b}"))],
        )
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "B's event page refused",
        || async {
            match browser.find(Locator::Css("main h1")).await {
                Ok(h) => h.text().await.is_ok_and(|t| t.starts_with("404")),
                Err(_) => false,
            }
        },
    )
    .await;

    // 7. A page of an origin that is not allowed cannot frame the portal.
    browser.enter_parent_frame().await.unwrap();
    browser
        .goto(&app_url(&disallowed, &portal_link("Elsewhere").await))
        .await
        .unwrap();
    enter_portal_frame(&browser).await;
    assert!(
        browser.find(Locator::Css("a.brand")).await.is_err(),
        "the portal rendered in a frame of {disallowed}"
    );
    browser.close().await.unwrap();
    engine.stop().await;
}
