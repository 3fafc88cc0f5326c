//! The console's inbound sources (issue 12): the list and a source's page with its latest
//! stored requests; read-only, escaped, and without secrets, headers, query strings or bodies.

use reqwest::StatusCode;
use testkit::*;

use crate::console_support::*;

/// Signs in with the admin token; the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .post(format!("{base}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=%2Fui%2Fsources"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn page(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
) -> (StatusCode, String) {
    let resp = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_sources_pages_show_settings_and_recent_requests_but_no_secret_header_or_body() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.batch_execute(
        "SELECT outbox.add_source('tok', 'token', 'shared-token-SECRET-0123456789',
                                  ordering_key => '/customer', idempotency_key => 'header:x-id');
         UPDATE outbox.sources SET description = '<script>alert(1)</script> payments' WHERE name = 'tok';
         SELECT outbox.add_source('gh', 'github', 'github-SECRET-value', tenant_id => 'acme');
         INSERT INTO outbox.inbound_requests (source, method, path, query, headers, content_type,
                                              body, idempotency_key, event_type, resource_key)
         VALUES ('tok', 'POST', '/in/tok', 'sig=QUERY-SECRET',
                 '[[\"authorization\", \"Bearer HEADER-SECRET\"]]', 'application/json',
                 convert_to('{\"customer\": \"BODY-SECRET\"}', 'UTF8'), '<b>id-1</b>', 'inbound.tok',
                 'cust-<7>');",
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    let base = format!("http://{}", engine.listen_addr);
    let http = http();
    let cookie = sign_in(&http, &base).await;

    let (status, list) = page(&http, &base, &cookie, "/ui/sources").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list.contains(r#"href="/ui/sources/tok""#), "{list}");
    assert!(list.contains(r#"href="/ui/sources/gh""#), "{list}");
    assert!(list.contains("acme"), "{list}");

    let (status, detail) = page(&http, &base, &cookie, "/ui/sources/tok").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(
        detail.contains("data-request-id="),
        "the stored request is listed: {detail}"
    );
    assert!(
        detail.contains("&lt;b&gt;id-1&lt;/b&gt;"),
        "keys are escaped: {detail}"
    );
    assert!(detail.contains("cust-&lt;7&gt;"), "{detail}");
    assert!(
        detail.contains("&lt;script&gt;"),
        "the description is escaped: {detail}"
    );
    assert!(!detail.contains("<script>alert"), "{detail}");

    for (path, html) in [("/ui/sources", &list), ("/ui/sources/tok", &detail)] {
        // Every secret, header value, query string and body above contains SECRET.
        assert!(
            !html.contains("SECRET"),
            "{path} shows a secret, header, query or body: {html}"
        );
    }
    let (status, _) = page(&http, &base, &cookie, "/ui/sources/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Without a session: the sign-in page, not the source.
    let resp = http
        .get(format!("{base}/ui/sources/tok"))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::OK);
    engine.stop().await;
}
