//! The tenant portal over plain HTTP (issue 11): links (`POST /v1/portal-links` and
//! `outbox.portal_link()`), sessions scoped to one tenant, and isolation: as tenant A, every
//! id-bearing page and action with tenant B's ids (and an internal endpoint's) answers 404;
//! forged, tampered, expired links and links after a key rotation do not open; actions need
//! the session's CSRF token; read-only links show without acting; portal pages carry their
//! own frame-ancestors. The browser side (iframe, a real receiver) is in `browser.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use testkit::*;

use crate::console_support::*;
use crate::support::Event;

pub const PORTAL_KEY: &str = "portal-key-for-tests-0123456789abcdef";
pub const APP_ORIGIN: &str = "http://127.0.0.1:1";

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    let set = headers.get(SET_COOKIE)?.to_str().ok()?;
    let (pair, _) = set.split_once(';')?;
    Some(pair.to_owned())
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + 19;
    html[at..].split('"').next().map(str::to_owned)
}

/// A browser holding one portal session (or none), as far as HTTP goes.
pub struct Tenant {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Tenant {
    /// Opens a portal link; panics unless it starts a session.
    pub async fn open(base: &str, link: &str) -> Tenant {
        let http = http();
        let resp = http.get(link).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{link}");
        assert_eq!(resp.headers()[LOCATION], "/ui/events");
        let cookie = cookie_of(resp.headers()).expect("a portal session cookie");
        let mut t = Tenant {
            http,
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
        };
        let (status, _, page) = t.get("/ui/endpoints").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        // The add form carries the session's CSRF token (a read-only portal has none).
        let (_, _, form) = t.get("/ui/endpoints/new").await;
        t.csrf = csrf_in(&form).unwrap_or_default();
        t
    }

    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
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

    /// A form POST as the portal's own page sends it (same origin), with the CSRF token.
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, &form(&all), "same-origin").await
    }

    async fn post_raw(&self, path: &str, body: &str, site: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap())
    }
}

/// A portal link for `tenant` from `/v1/portal-links`.
pub async fn link(api: &Api, body: Value) -> String {
    let (status, resp) = api.post("/v1/portal-links", body).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let url = resp["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!("{}/ui/portal?link=", api.base)),
        "an absolute URL: {url}"
    );
    url
}

/// Two tenants with an endpoint each (acme's and globex's), an internal endpoint that gets
/// every tenant's events, a succeeded and a dead delivery per tenant.
struct World {
    _db: TestDb,
    c: tokio_postgres::Client,
    engine: outboxd::Engine,
    api: Api,
    _ok: Receiver,
    _bad: Receiver,
    ep_a: i64,
    ep_b: i64,
    ep_b_dead: i64,
    ep_internal: i64,
    ev_a: String,
    ev_b: String,
    ev_b_dead: String,
    d_b_ok: i64,
    d_b_dead: i64,
    d_internal_of_a: i64,
}

async fn world(extra: &[&str]) -> World {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Receiver::ok(TEST_SECRET).await;
    let bad = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    let ep_a = add_endpoint(&c, &ok.url(), &["order.*"], Some("acme")).await;
    let ep_b = add_endpoint(&c, &ok.url(), &["order.*"], Some("globex")).await;
    let ep_b_dead = add_endpoint(&c, &bad.url(), &["invoice.*"], Some("globex")).await;
    let ep_internal = add_endpoint(&c, &ok.url(), &["*"], None).await;
    c.execute(
        "UPDATE outbox.endpoints SET all_tenants = true WHERE id = $1",
        &[&ep_internal],
    )
    .await
    .unwrap();
    let mut args = vec!["--max-age", "1h", "--portal-key", PORTAL_KEY];
    args.extend_from_slice(extra);
    let engine = start(&db, &args).await;
    let api = Api::new(&engine);
    let ev_a = Event::new("order.paid")
        .tenant("acme")
        .payload(json!({"secret_of": "acme"}))
        .publish(&c)
        .await;
    let ev_b = Event::new("order.paid")
        .tenant("globex")
        .payload(json!({"secret_of": "globex"}))
        .publish(&c)
        .await;
    // Older than the max age: its first failure is its last.
    let ev_b_dead: String = c
        .query_one(
            "INSERT INTO outbox.events (event_type, tenant_id, payload, created_at)
             VALUES ('invoice.overdue', 'globex', '{}', now() - interval '2 hours')
             RETURNING event_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    wait_settled(&c).await;
    let d_b_ok = delivery_of(&c, &ev_b, ep_b).await;
    let d_b_dead = delivery_of(&c, &ev_b_dead, ep_b_dead).await;
    let d_internal_of_a = delivery_of(&c, &ev_a, ep_internal).await;
    assert_eq!(status_of(&c, d_b_ok).await, "succeeded");
    assert_eq!(status_of(&c, d_b_dead).await, "dead");
    World {
        _db: db,
        c,
        engine,
        api,
        _ok: ok,
        _bad: bad,
        ep_a,
        ep_b,
        ep_b_dead,
        ep_internal,
        ev_a,
        ev_b,
        ev_b_dead,
        d_b_ok,
        d_b_dead,
        d_internal_of_a,
    }
}

/// What B has, to compare before and after A's attempts.
async fn globex_state(c: &tokio_postgres::Client) -> String {
    c.query_one(
        "SELECT (SELECT string_agg(format('%s|%s|%s|%s|%s', e.id, e.url, e.enabled, e.secrets,
                                          e.description), ';' ORDER BY e.id)
                   FROM outbox.endpoints e WHERE e.tenant_id = 'globex' OR e.tenant_id IS NULL)
             || (SELECT string_agg(format('%s|%s|%s|%s', d.id, d.state, d.attempt_count,
                                          d.updated_at), ';' ORDER BY d.id)
                   FROM outbox.deliveries d JOIN outbox.endpoints e ON e.id = d.endpoint_id
                  WHERE e.tenant_id = 'globex' OR e.tenant_id IS NULL)
             || (SELECT count(*) FROM outbox.events WHERE tenant_id = 'globex')::text
             || (SELECT string_agg(format('%s|%s', s.endpoint_id, s.event_types), ';' ORDER BY s.id)
                   FROM outbox.subscriptions s)",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_tenant_sees_and_changes_nothing_of_another_tenant_and_is_answered_not_found() {
    let w = world(&[]).await;
    let url = link(&w.api, json!({"tenant_id": "acme"})).await;
    let a = Tenant::open(&w.api.base, &url).await;
    assert!(!a.csrf.is_empty(), "the portal's pages carry a CSRF token");

    // What A sees: its event and endpoint; not B's, not the internal endpoint.
    let (_, _, events) = a.get("/ui/events").await;
    assert!(
        events.contains(&format!("data-event-id=\"{}\"", w.ev_a)),
        "{events}"
    );
    assert!(!events.contains(&w.ev_b) && !events.contains(&w.ev_b_dead));
    let (_, _, endpoints) = a.get("/ui/endpoints").await;
    assert!(endpoints.contains(&format!("data-endpoint-id=\"{}\"", w.ep_a)));
    for other in [w.ep_b, w.ep_b_dead, w.ep_internal] {
        assert!(
            !endpoints.contains(&format!("data-endpoint-id=\"{other}\"")),
            "endpoint {other} listed for acme"
        );
    }
    let (status, _, detail) = a.get(&format!("/ui/events/{}", w.ev_a)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !detail.contains(&format!("data-delivery-id=\"{}\"", w.d_internal_of_a)),
        "the internal endpoint's delivery of A's own event is not shown"
    );
    // Searches that name B's things find nothing.
    for q in [
        format!("q={}", w.ev_b),
        "tenant=globex".to_owned(),
        format!("endpoint={}", w.ep_b),
        format!("endpoint={}&status=dead", w.ep_b_dead),
        "status=dead".to_owned(),
        "q=type%3Ainvoice.*".to_owned(),
    ] {
        let (status, _, page) = a.get(&format!("/ui/events?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        for ev in [&w.ev_b, &w.ev_b_dead] {
            assert!(
                !page.contains(&format!("data-event-id=\"{ev}\"")),
                "{q} shows B's event"
            );
        }
    }

    let before = globex_state(&w.c).await;
    let mut tried = Vec::new();
    // Every id-bearing page with B's (or the internal endpoint's) ids.
    let gets = [
        format!("/ui/events/{}", w.ev_b),
        format!("/ui/events/{}/payload", w.ev_b),
        format!("/ui/events/{}", w.ev_b_dead),
        format!("/ui/deliveries/{}", w.d_b_ok),
        format!("/ui/deliveries/{}", w.d_b_dead),
        format!("/ui/deliveries/{}", w.d_internal_of_a),
        format!("/ui/deliveries/{}/retry", w.d_b_dead),
        format!("/ui/deliveries/{}/resend", w.d_b_ok),
        format!("/ui/endpoints/{}", w.ep_b),
        format!("/ui/endpoints/{}", w.ep_b_dead),
        format!("/ui/endpoints/{}", w.ep_internal),
        format!("/ui/endpoints/{}/edit", w.ep_b),
        format!("/ui/endpoints/{}/edit", w.ep_internal),
        format!("/ui/endpoints/{}/secret", w.ep_b),
        format!("/ui/endpoints/{}/rotate", w.ep_b),
        format!("/ui/endpoints/{}/replay", w.ep_b),
        format!("/ui/endpoints/{}/delete", w.ep_internal),
    ];
    for path in &gets {
        let (status, _, page) = a.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}: {page}");
        assert!(
            !page.contains("globex") && !page.contains("whsec_"),
            "GET {path} leaks"
        );
        tried.push(format!("GET {path} -> {status}"));
    }
    // Every action with B's ids, with A's valid CSRF token.
    let since = "2000-01-01T00:00";
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/ui/deliveries/{}/retry", w.d_b_dead), vec![]),
        (format!("/ui/deliveries/{}/resend", w.d_b_ok), vec![]),
        (
            format!("/ui/deliveries/{}/retry", w.d_internal_of_a),
            vec![],
        ),
        (format!("/ui/endpoints/{}/secret", w.ep_b), vec![]),
        (format!("/ui/endpoints/{}/secret", w.ep_internal), vec![]),
        (format!("/ui/endpoints/{}/rotate", w.ep_b), vec![]),
        (
            format!("/ui/endpoints/{}/replay", w.ep_b),
            vec![("since", since)],
        ),
        (
            format!("/ui/endpoints/{}/replay", w.ep_internal),
            vec![("since", since)],
        ),
        (format!("/ui/endpoints/{}/retry-dead", w.ep_b_dead), vec![]),
        (format!("/ui/endpoints/{}/test", w.ep_b), vec![]),
        (format!("/ui/endpoints/{}/disable", w.ep_b), vec![]),
        (format!("/ui/endpoints/{}/enable", w.ep_b), vec![]),
        (format!("/ui/endpoints/{}/delete", w.ep_b), vec![]),
        (format!("/ui/endpoints/{}/delete", w.ep_internal), vec![]),
        (
            format!("/ui/endpoints/{}/edit", w.ep_b),
            vec![("url", "https://evil.example/"), ("event_types", "*")],
        ),
    ];
    for (path, pairs) in &posts {
        let (status, page) = a.post(path, pairs).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {path}: {page}");
        assert!(!page.contains("whsec_"), "POST {path} leaks a secret");
        tried.push(format!("POST {path} -> {status}"));
    }
    // The retry-dead of A's own endpoint naming B's delivery.
    // (The admin API is not reachable with a portal session at all.)
    for (method, path) in [
        ("GET", format!("/v1/deliveries/{}", w.d_b_dead)),
        ("GET", format!("/v1/endpoints/{}/secret", w.ep_b)),
        ("POST", format!("/v1/deliveries/{}/retry", w.d_b_dead)),
        ("POST", "/v1/portal-links".to_owned()),
    ] {
        let rb = match method {
            "GET" => a.http.get(format!("{}{path}", a.base)),
            _ => a
                .http
                .post(format!("{}{path}", a.base))
                .json(&json!({"tenant_id": "globex"})),
        };
        let status = rb
            .header("cookie", &a.cookie)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        tried.push(format!(
            "{method} {path} (portal cookie, no bearer) -> {status}"
        ));
    }
    assert_eq!(globex_state(&w.c).await, before, "nothing of B changed");
    eprintln!("cross-tenant attempts as acme:\n  {}", tried.join("\n  "));
    w.engine.stop().await;
}

#[tokio::test]
async fn a_tenant_manages_its_own_endpoints_in_its_portal() {
    let w = world(&[]).await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let url = link(&w.api, json!({"tenant_id": "acme"})).await;
    let a = Tenant::open(&w.api.base, &url).await;
    // The form offers the types seen for acme, not globex's invoice types.
    let (status, _, new) = a.get("/ui/endpoints/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        new.contains("value=\"order.paid\"") && !new.contains("invoice.overdue"),
        "{new}"
    );
    // The SSRF guard refuses a metadata address.
    let (status, page) = a
        .post(
            "/ui/endpoints/new",
            &[
                ("url", "http://169.254.169.254/latest"),
                ("event_types", "order.paid"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let (status, page) = a
        .post(
            "/ui/endpoints/new",
            &[
                ("url", &rx.url()),
                ("description", "ours"),
                ("event_types", "order.paid"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    let at = page
        .find("id=\"secret\">")
        .expect("the secret is shown once")
        + 12;
    let secret = page[at..].split('<').next().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id: i64 =
        w.c.query_one(
            "SELECT id FROM outbox.endpoints WHERE tenant_id = 'acme' AND description = 'ours'",
            &[],
        )
        .await
        .expect("the new endpoint belongs to acme")
        .get(0);
    // Test event, secret, rotation, edit, disable, delete: all on its own endpoint.
    let (status, _) = a.post(&format!("/ui/endpoints/{id}/test"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    wait_until(
        Duration::from_secs(10),
        "the test event arrives",
        || async { rx.count() >= 1 },
    )
    .await;
    let got = &rx.requests()[0];
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got.body, &got.headers)
        .expect("signed with the secret the portal showed");
    let (status, page) = a.post(&format!("/ui/endpoints/{id}/secret"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("whsec_"));
    let (status, page) = a.post(&format!("/ui/endpoints/{id}/rotate"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let secrets: i32 =
        w.c.query_one(
            "SELECT cardinality(secrets) FROM outbox.endpoints WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(secrets, 2);
    let (status, _) = a
        .post(
            &format!("/ui/endpoints/{id}/edit"),
            &[
                ("url", ""),
                ("description", "renamed"),
                ("event_types", "order.*"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let types: Vec<String> =
        w.c.query_one(
            "SELECT event_types FROM outbox.subscriptions WHERE endpoint_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(types, ["order.*"]);
    let (status, _) = a.post(&format!("/ui/endpoints/{id}/delete"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let left = scalar_i64(
        &w.c,
        &format!("SELECT count(*) FROM outbox.endpoints WHERE id = {id}"),
    )
    .await;
    assert_eq!(left, 0);
    w.engine.stop().await;
}

#[tokio::test]
async fn forged_tampered_expired_and_rotated_links_do_not_open() {
    let w = world(&[]).await;
    let good = link(&w.api, json!({"tenant_id": "acme"})).await;
    let a = Tenant::open(&w.api.base, &good).await;
    let http = http();
    let opens = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status() }
    };
    let token = good.split_once("link=").unwrap().1.to_owned();
    let (grant, mac) = token.split_once('.').unwrap();
    let base = format!("{}/ui/portal?link=", w.api.base);
    // Forged: a grant for globex signed with nothing.
    let forged_grant = base64_url(br#"{"v":1,"t":"globex","exp":9999999999,"ro":false}"#);
    // Tampered: globex's grant with acme's MAC; acme's grant with a changed MAC.
    let globex = link(&w.api, json!({"tenant_id": "globex"})).await;
    let globex_grant = globex
        .split_once("link=")
        .unwrap()
        .1
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    let mut bad_mac = mac.to_owned();
    bad_mac.replace_range(0..1, if mac.starts_with('A') { "B" } else { "A" });
    // Expired: signed in SQL with the stored key, expiring in the past.
    wait_until(Duration::from_secs(10), "the link key stored", || async {
        scalar_i64(&w.c, "SELECT count(*) FROM outbox.portal_keys").await == 1
    })
    .await;
    let expired: String =
        w.c.query_one(
            "WITH g AS (SELECT outbox.base64url(convert_to(jsonb_build_object(
                        'v', 1, 't', 'acme', 'exp', extract(epoch FROM now())::bigint - 10,
                        'ro', false)::text, 'UTF8')) AS g)
             SELECT g.g || '.' || outbox.base64url(outbox.hmac_sha256(k.link_key,
                        convert_to('outboxd portal link v1.' || g.g, 'UTF8')))
               FROM g, outbox.portal_keys k",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for (what, url) in [
        ("forged", format!("{base}{forged_grant}.{mac}")),
        ("tampered grant", format!("{base}{globex_grant}.{mac}")),
        ("tampered mac", format!("{base}{grant}.{bad_mac}")),
        ("no mac", format!("{base}{grant}")),
        ("empty", base.clone()),
        ("expired", format!("{base}{expired}")),
    ] {
        let status = opens(url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        eprintln!("link {what} -> {status}");
    }
    // SQL's links open (same HMAC as outboxd's).
    let sql_link: String =
        w.c.query_one("SELECT outbox.portal_link('acme')", &[])
            .await
            .unwrap()
            .get(0);
    assert!(sql_link.starts_with("http://"), "{sql_link}");
    let from_sql = Tenant::open(&w.api.base, &sql_link).await;
    let (_, _, page) = from_sql.get("/ui/events").await;
    assert!(page.contains(&w.ev_a) && !page.contains(&w.ev_b));

    // Rotating the key: the same database, another OUTBOXD_PORTAL_KEY.
    let World {
        _db: db, engine, ..
    } = w;
    engine.stop().await;
    let engine = start(
        &db,
        &["--portal-key", "a-rotated-portal-key-0123456789abcdef"],
    )
    .await;
    let base2 = format!("http://{}", engine.listen_addr);
    let moved = |u: &str| u.replace(&a.base, &base2);
    assert_eq!(
        opens(moved(&good)).await,
        StatusCode::NOT_FOUND,
        "a link after rotation"
    );
    eprintln!("link for acme after the key rotated -> 404");
    let old_session = Tenant {
        http: http.clone(),
        base: base2.clone(),
        cookie: a.cookie.clone(),
        csrf: a.csrf.clone(),
    };
    let (status, _, page) = old_session.get("/ui/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a session after rotation");
    assert!(
        !page.contains("name=\"token\""),
        "no admin sign-in form for a tenant"
    );
    // The stored key follows the rotation: SQL links made now open.
    let c = db.client().await;
    wait_until(
        Duration::from_secs(10),
        "SQL links signed with the new key",
        || async {
            let l: String = c
                .query_one("SELECT outbox.portal_link('acme')", &[])
                .await
                .unwrap()
                .get(0);
            http.get(moved(&l)).send().await.unwrap().status() == StatusCode::SEE_OTHER
        },
    )
    .await;
    engine.stop().await;
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn portal_actions_need_csrf_and_read_only_links_do_not_act() {
    let w = world(&["--portal-frame-ancestors", APP_ORIGIN]).await;
    let a = Tenant::open(
        &w.api.base,
        &link(&w.api, json!({"tenant_id": "acme"})).await,
    )
    .await;
    let path = format!("/ui/endpoints/{}/disable", w.ep_a);
    let (status, _) = a.post_raw(&path, "", "same-origin").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "without a CSRF token");
    let (status, _) = a
        .post_raw(&path, &form(&[("csrf", "forged")]), "same-origin")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "with a forged token");
    let (status, _) = a
        .post_raw(&path, &form(&[("csrf", &a.csrf)]), "cross-site")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "from another site");
    // Another session's token (B's portal) does not do for A's.
    let b = Tenant::open(
        &w.api.base,
        &link(&w.api, json!({"tenant_id": "globex"})).await,
    )
    .await;
    let (status, _) = a
        .post_raw(&path, &form(&[("csrf", &b.csrf)]), "same-origin")
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "with another session's token"
    );
    let enabled: bool =
        w.c.query_one(
            "SELECT enabled FROM outbox.endpoints WHERE id = $1",
            &[&w.ep_a],
        )
        .await
        .unwrap()
        .get(0);
    assert!(enabled, "nothing done without a valid token");

    // Portal pages may be framed by the app's origin; the console stays unframeable.
    let (_, headers, _) = a.get("/ui/events").await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.ends_with(&format!("frame-ancestors {APP_ORIGIN}")),
        "{csp}"
    );
    assert!(headers.get("x-frame-options").is_none());
    let resp = http()
        .get(format!("{}/ui/login", w.api.base))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");

    // Read-only: no action buttons, actions refused, brand shown escaped.
    let ro = Tenant::open(
        &w.api.base,
        &link(
            &w.api,
            json!({"tenant_id": "acme", "read_only": true, "brand": "Acme <script>", "accent": "#3366ff"}),
        )
        .await,
    )
    .await;
    let (_, _, page) = ro.get(&format!("/ui/endpoints/{}", w.ep_a)).await;
    assert!(!page.contains("data-action="), "no actions: {page}");
    assert!(page.contains("Acme &lt;script&gt;") && !page.contains("<script>"));
    let (status, _, _) = ro.get("/ui/endpoints/new").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ro
        .post_raw(&path, &form(&[("csrf", &ro.csrf)]), "same-origin")
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read-only portal does not act"
    );
    let (_, _, css) = ro.get("/ui/portal/theme.css").await;
    assert!(css.contains("--accent: #3366ff"), "{css}");
    // Invalid link requests are refused with the field named.
    for (body, field) in [
        (json!({"tenant_id": ""}), "tenant_id"),
        (json!({"tenant_id": "acme", "accent": "red;}"}), "accent"),
        (json!({"tenant_id": "acme", "ttl": "3d"}), "ttl"),
        (
            json!({"tenant_id": "acme", "event_types": ["a b"]}),
            "event_types",
        ),
    ] {
        let (status, resp) = w.api.post("/v1/portal-links", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert_eq!(resp["error"]["field"], field, "{resp}");
    }
    w.engine.stop().await;
}
