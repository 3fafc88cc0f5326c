//! The REST admin API under `/v1` (SPEC §2, §7), on a real PostgreSQL with an in-process
//! engine, over real HTTP. Each test has its own fresh database.

use std::time::Duration;

use outboxd::{Config, Engine};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::*;

const TOKEN: &str = "admin-token-for-tests-0123456789";

/// Engine configuration for these tests (see `common::engine_config`).
fn config(db: &TestDb, extra: &[&str]) -> Config {
    engine_config(db, extra)
}

/// An engine with the admin token; `extra` flags on top (e.g. `--allow-networks`).
async fn start(db: &TestDb, extra: &[&str]) -> (Engine, Api) {
    let mut args = vec!["--admin-token", TOKEN];
    args.extend_from_slice(extra);
    let engine = Engine::start(config(db, &args))
        .await
        .expect("engine starts");
    let api = Api::new(&engine, Some(TOKEN));
    (engine, api)
}

/// A small client for `/v1`: every call returns the status and the JSON body (`Null` when
/// the body is empty).
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn new(engine: &Engine, token: Option<&str>) -> Api {
        Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            base: format!("http://{}", engine.listen_addr),
            token: token.map(str::to_owned),
        }
    }

    fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.map(str::to_owned),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = rb.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    /// POST without a body.
    async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::POST, path)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(reqwest::Method::PATCH, path).json(&body))
            .await
    }

    /// A raw body with a content type.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send(
            self.request(method, path)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// Creates an endpoint that must be accepted; returns the response body.
    async fn create_endpoint(&self, body: Value) -> Value {
        let (status, v) = self.post("/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v
    }
}

/// Asserts a 400 whose message names `field`, and returns the message.
fn assert_invalid(resp: (StatusCode, Value), field: &str) -> String {
    let (status, v) = resp;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let message = v["error"]["message"].as_str().expect("message").to_owned();
    assert!(
        message.contains(field),
        "message does not name {field:?}: {message}"
    );
    assert!(v["error"]["code"].is_string(), "{v}");
    message
}

fn assert_error(resp: (StatusCode, Value), status: StatusCode, code: &str) -> String {
    let (got, v) = resp;
    assert_eq!(got, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    v["error"]["message"].as_str().expect("message").to_owned()
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

async fn scalar_i64(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn v1_requires_the_bearer_token_and_health_does_not() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;

    for anonymous in [
        api.with_token(None),
        api.with_token(Some("wrong-token-0123456789")),
    ] {
        for path in [
            "/v1/endpoints",
            "/v1/subscriptions",
            "/v1/endpoints/1/secret",
            "/v1/nope",
        ] {
            let resp = anonymous.get(path).await;
            assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized");
        }
        let resp = anonymous
            .post("/v1/endpoints", json!({"url": "https://example.com/"}))
            .await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let resp = api
        .http
        .get(format!("{}/v1/endpoints", api.base))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"outboxd\""
    );
    // Nothing was created by the refused POSTs.
    let c = db.client().await;
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.endpoints").await,
        0
    );

    let (status, v) = api.get("/v1/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"data": [], "next_cursor": null}));

    let plain = api.with_token(None);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = plain
            .http
            .get(format!("{}{path}", plain.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    engine.stop().await;
}

#[tokio::test]
async fn endpoints_are_created_listed_in_pages_changed_and_deleted() {
    let db = fresh_db().await;
    let c = db.client().await;
    let (engine, api) = start(&db, &[]).await;

    let mut ids = Vec::new();
    for i in 0..5 {
        let tenant = if i % 2 == 0 {
            json!("acme")
        } else {
            json!(null)
        };
        let v = api
            .create_endpoint(json!({
                "url": format!("https://hooks.example.com/{i}"),
                "tenant_id": tenant,
                "description": format!("endpoint {i}"),
            }))
            .await;
        ids.push(id(&v));
    }

    // Three pages of 2, 2 and 1, in id order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/endpoints?limit=2&cursor={c}"),
            None => "/v1/endpoints?limit=2".to_owned(),
        };
        let (status, v) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        pages += 1;
        let data = v["data"].as_array().expect("data");
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(id));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    let (_, v) = api.get("/v1/endpoints?tenant_id=acme").await;
    let acme: Vec<i64> = v["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(acme, vec![ids[0], ids[2], ids[4]]);
    assert_eq!(v["next_cursor"], Value::Null);

    // One endpoint, with its defaults.
    let (status, e) = api.get(&format!("/v1/endpoints/{}", ids[1])).await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["url"], "https://hooks.example.com/1");
    assert_eq!(e["tenant_id"], Value::Null);
    assert_eq!(e["all_tenants"], false);
    assert_eq!(e["enabled"], true);
    assert_eq!(e["max_in_flight"], 16);
    assert_eq!(e["rate_limit"], Value::Null);
    assert_eq!(e["headers"], json!({}));
    assert_eq!(e["description"], "endpoint 1");
    assert_eq!(e["secret_count"], 1);
    assert!(e["created_at"].as_str().unwrap().ends_with('Z'));

    // PATCH: any subset; null clears nullable fields.
    let path = format!("/v1/endpoints/{}", ids[1]);
    let (status, e) = api
        .patch(
            &path,
            json!({"max_in_flight": 4, "rate_limit": 2.5, "headers": {"X-Team": "pay"},
                   "all_tenants": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["max_in_flight"], 4);
    assert_eq!(e["rate_limit"], 2.5);
    assert_eq!(
        e["headers"],
        json!({"x-team": "********"}),
        "values are write-only"
    );
    assert_eq!(e["all_tenants"], true);
    assert_eq!(e["description"], "endpoint 1", "untouched fields stay");
    let (_, e) = api.patch(&path, json!({"rate_limit": null})).await;
    assert_eq!(e["rate_limit"], Value::Null);
    assert_eq!(e["max_in_flight"], 4);

    // Disable with a reason; re-enabling clears it.
    let (status, e) = api
        .patch(
            &path,
            json!({"enabled": false, "disabled_reason": "maintenance"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        (e["enabled"].clone(), e["disabled_reason"].clone()),
        (json!(false), json!("maintenance"))
    );
    // The engine's own reason (410 Gone) is cleared the same way.
    c.execute(
        "UPDATE outbox.endpoints SET disabled_reason = 'gone' WHERE id = $1",
        &[&ids[1]],
    )
    .await
    .unwrap();
    let (_, e) = api.patch(&path, json!({"enabled": true})).await;
    assert_eq!(e["enabled"], true);
    assert_eq!(e["disabled_reason"], Value::Null);
    let resp = api.patch(&path, json!({"disabled_reason": "x"})).await;
    assert_invalid(resp, "disabled_reason");
    let before = e["updated_at"].clone();
    let (status, e) = api.patch(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "an empty PATCH is fine: {e}");
    assert_eq!(e["updated_at"], before, "an empty PATCH changes nothing");

    // DELETE cascades the endpoint's subscriptions and deliveries.
    let (status, _) = api
        .post(
            "/v1/subscriptions",
            json!({"endpoint_id": ids[1], "event_types": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let event_pk: i64 = c
        .query_one(
            "INSERT INTO outbox.events (event_type, payload, routed_at)
             VALUES ('x', '{}', now()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO outbox.deliveries (event_pk, endpoint_id, state) VALUES ($1, $2, 'dead')",
        &[&event_pk, &ids[1]],
    )
    .await
    .unwrap();
    let (status, body) = api.delete(&path).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_error(api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(api.delete(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        api.patch(&path, json!({"enabled": true})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let left = scalar_i64(
        &c,
        "SELECT (SELECT count(*) FROM outbox.deliveries) + (SELECT count(*) FROM outbox.subscriptions)",
    )
    .await;
    assert_eq!(left, 0);
    let (_, v) = api.get("/v1/endpoints?limit=500").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 4);

    // Ids that name nothing.
    for path in [
        "/v1/endpoints/999999",
        "/v1/endpoints/abc",
        "/v1/endpoints/-1",
    ] {
        assert_error(api.get(path).await, StatusCode::NOT_FOUND, "not_found");
    }
    assert_error(
        api.get("/v1/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        api.send(api.request(reqwest::Method::PUT, "/v1/endpoints"))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    engine.stop().await;
}

#[tokio::test]
async fn secrets_are_shown_only_when_created_rotated_or_read_explicitly() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;

    let created = api
        .create_endpoint(json!({"url": "https://hooks.example.com/s"}))
        .await;
    let ep = id(&created);
    let first = created["secret"]
        .as_str()
        .expect("secret in the create response")
        .to_owned();
    assert!(first.starts_with("whsec_"));
    assert!(standardwebhooks::Webhook::new(&first).is_ok());
    assert_eq!(created["secret_count"], 1);
    let resp = api
        .http
        .post(format!("{}/v1/endpoints", api.base))
        .bearer_auth(TOKEN)
        .json(&json!({"url": "https://hooks.example.com/h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let (status, _) = api.get(&location).await;
    assert_eq!(status, StatusCode::OK, "{location}");

    // Never in GET or lists.
    let path = format!("/v1/endpoints/{ep}");
    let (_, e) = api.get(&path).await;
    assert_eq!(e["secret_count"], 1);
    assert!(
        e.get("secret").is_none() && e.get("secrets").is_none(),
        "{e}"
    );
    let (_, list) = api.get("/v1/endpoints").await;
    assert!(!list.to_string().contains("whsec_"), "{list}");
    let (_, patched) = api.patch(&path, json!({"description": "d"})).await;
    assert!(!patched.to_string().contains("whsec_"), "{patched}");
    let resp = api.patch(&path, json!({"secret": TEST_SECRET})).await;
    assert!(assert_invalid(resp, "secret").contains("rotate"));

    // Explicit read.
    let resp = api
        .http
        .get(format!("{}{path}/secret", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["secrets"], json!([first]));

    // Rotation with a generated secret: both sign until the rotation is finished.
    let (status, r) = api.post_empty(&format!("{path}/secret/rotate")).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let second = r["secret"].as_str().unwrap().to_owned();
    assert!(second.starts_with("whsec_") && second != first);
    assert_eq!(r["secret_count"], 2);
    let (_, v) = api.get(&format!("{path}/secret")).await;
    assert_eq!(v["secrets"], json!([second, first]));

    // Rotation with a given secret; giving an active one again is a conflict.
    let (status, r) = api
        .post(
            &format!("{path}/secret/rotate"),
            json!({"secret": TEST_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["secret"], TEST_SECRET);
    assert_eq!(r["secret_count"], 3);
    let resp = api
        .post(
            &format!("{path}/secret/rotate"),
            json!({"secret": TEST_SECRET}),
        )
        .await;
    assert_error(resp, StatusCode::CONFLICT, "conflict");
    let resp = api
        .post(
            &format!("{path}/secret/rotate"),
            json!({"secret": "whsec_***"}),
        )
        .await;
    let message = assert_invalid(resp, "secret");
    assert!(!message.contains("***"), "{message}");

    let (status, e) = api
        .post_empty(&format!("{path}/secret/finish-rotation"))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["secret_count"], 1);
    assert!(e.get("secrets").is_none());
    let (_, v) = api.get(&format!("{path}/secret")).await;
    assert_eq!(v["secrets"], json!([TEST_SECRET]));

    // A given secret at creation is kept as is.
    let created = api
        .create_endpoint(json!({"url": "https://hooks.example.com/t", "secret": TEST_SECRET}))
        .await;
    assert_eq!(created["secret"], TEST_SECRET);

    for p in [
        "/v1/endpoints/999999/secret/rotate",
        "/v1/endpoints/999999/secret/finish-rotation",
    ] {
        assert_error(api.post_empty(p).await, StatusCode::NOT_FOUND, "not_found");
    }
    assert_error(
        api.get("/v1/endpoints/999999/secret").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    engine.stop().await;
}

#[tokio::test]
async fn header_values_and_url_credentials_are_write_only_and_short_secrets_are_refused() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;
    let c = db.client().await;

    // Standard Webhooks secrets are 24 to 64 bytes: shorter ones are refused on create and
    // rotate, without echoing them.
    let short = "whsec_AA==";
    let resp = api
        .post(
            "/v1/endpoints",
            json!({"url": "https://hooks.example.com/a", "secret": short}),
        )
        .await;
    let m = assert_invalid(resp, "secret");
    assert!(m.contains("24 to 64 bytes") && m.contains("got 1"), "{m}");
    let created = api
        .create_endpoint(json!({
            "url": "https://svc:pa55word@hooks.example.com/a?team=pay",
            "headers": {"Authorization": "Bearer s3cret-token", "X-Team": "pay"},
        }))
        .await;
    let path = format!("/v1/endpoints/{}", id(&created));
    for secret in [short, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="] {
        let resp = api
            .post(&format!("{path}/secret/rotate"), json!({"secret": secret}))
            .await;
        assert_invalid(resp, "secret");
    }
    let (_, v) = api.get(&format!("{path}/secret")).await;
    assert_eq!(v["secrets"].as_array().unwrap().len(), 1, "nothing rotated");

    // Header values and URL credentials are never shown: create, GET, list, PATCH.
    let masked_url = "https://********:********@hooks.example.com/a?team=pay";
    let masked_headers = json!({"authorization": "********", "x-team": "********"});
    let (_, got) = api.get(&path).await;
    let (_, list) = api.get("/v1/endpoints").await;
    for shown in [&created, &got, &list["data"][0]] {
        assert_eq!(shown["url"], masked_url, "{shown}");
        assert_eq!(shown["headers"], masked_headers, "{shown}");
    }
    for text in [created.to_string(), list.to_string()] {
        assert!(
            !text.contains("s3cret-token") && !text.contains("pa55word"),
            "{text}"
        );
    }
    // What GET shows, sent back with one change, keeps the stored values.
    let mut headers = got["headers"].clone();
    headers["x-team"] = json!("billing");
    let (status, e) = api
        .patch(&path, json!({"url": got["url"], "headers": headers}))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["url"], masked_url);
    let row = c
        .query_one(
            "SELECT url, headers::text FROM outbox.endpoints WHERE id = $1",
            &[&id(&created)],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "https://svc:pa55word@hooks.example.com/a?team=pay"
    );
    let stored: Value = serde_json::from_str(&row.get::<_, String>(1)).unwrap();
    assert_eq!(
        stored,
        json!({"authorization": "Bearer s3cret-token", "x-team": "billing"})
    );
    // A masked value for a header the endpoint does not have names the field.
    let resp = api
        .patch(&path, json!({"headers": {"x-new": "********"}}))
        .await;
    assert_invalid(resp, "headers");

    // Credentials in the query string (`?token=`) are masked too, and a URL sent back with
    // its masked parts and a new path keeps the stored credentials.
    let (status, e) = api
        .patch(
            &path,
            json!({"url": "https://svc:pa55word@hooks.example.com/a?team=pay&token=q-s3cret"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(
        e["url"],
        "https://********:********@hooks.example.com/a?team=pay&token=********"
    );
    assert!(!e.to_string().contains("q-s3cret"), "{e}");
    let (status, e) = api
        .patch(
            &path,
            json!({"url": "https://********:********@hooks.example.com/b?team=pay&token=********"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    let row = c
        .query_one(
            "SELECT url FROM outbox.endpoints WHERE id = $1",
            &[&id(&created)],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "https://svc:pa55word@hooks.example.com/b?team=pay&token=q-s3cret"
    );
    let resp = api
        .patch(
            &path,
            json!({"url": "https://hooks.example.com/b?api_key=********"}),
        )
        .await;
    let m = assert_invalid(resp, "url");
    assert!(m.contains("\"api_key\""), "{m}");

    // PATCH {} (and a PATCH that sets what is already there) writes nothing.
    let version = scalar_i64(&c, "SELECT version FROM outbox.config_version").await;
    let (_, before) = api.get(&path).await;
    for body in [
        json!({}),
        json!({"enabled": true, "max_in_flight": before["max_in_flight"]}),
    ] {
        let (status, e) = api.patch(&path, body).await;
        assert_eq!(status, StatusCode::OK, "{e}");
        assert_eq!(e["updated_at"], before["updated_at"], "{e}");
    }
    assert_eq!(
        scalar_i64(&c, "SELECT version FROM outbox.config_version").await,
        version,
        "no catalog reload on the replicas"
    );
    let (_, sub) = api
        .post(
            "/v1/subscriptions",
            json!({"endpoint_id": id(&created), "event_types": ["a.*"]}),
        )
        .await;
    let sub_path = format!("/v1/subscriptions/{}", id(&sub));
    let (status, s) = api.patch(&sub_path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["updated_at"], sub["updated_at"]);
    engine.stop().await;
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_field_named() {
    let db = fresh_db().await;
    // No --allow-networks: loopback and private literals are refused.
    let (engine, api) = start(&db, &[]).await;

    let create = |body: Value| api.post("/v1/endpoints", body);
    let m = assert_invalid(create(json!({"url": "not a url"})).await, "url");
    assert!(m.contains("not a valid URL"), "{m}");
    let m = assert_invalid(create(json!({"url": "ftp://example.com/x"})).await, "url");
    assert!(m.contains("http or https"), "{m}");
    let m = assert_invalid(
        create(json!({"url": "http://127.0.0.1:8080/hook"})).await,
        "url",
    );
    assert!(
        m.contains("loopback") && m.contains("OUTBOXD_ALLOW_NETWORKS"),
        "{m}"
    );
    let m = assert_invalid(create(json!({"url": "http://10.1.2.3/hook"})).await, "url");
    assert!(m.contains("private"), "{m}");
    let m = assert_invalid(
        create(json!({"url": "http://169.254.169.254/"})).await,
        "url",
    );
    assert!(m.contains("metadata"), "{m}");
    assert_invalid(create(json!({"tenant_id": "acme"})).await, "url");
    let ok = "https://hooks.example.com/v";
    let m = assert_invalid(
        create(json!({"url": ok, "secret": "not-a-secret"})).await,
        "secret",
    );
    assert!(m.contains("whsec_"), "{m}");
    assert_invalid(
        create(json!({"url": ok, "secret": "whsec_%%%"})).await,
        "secret",
    );
    let m = assert_invalid(
        create(json!({"url": ok, "headers": {"x-api-key": "line\nbreak"}})).await,
        "headers",
    );
    assert!(m.contains("x-api-key") && !m.contains("line"), "{m}");
    assert_invalid(
        create(json!({"url": ok, "headers": {"x-n": 5}})).await,
        "headers",
    );
    assert_invalid(
        create(json!({"url": ok, "headers": {"bad name": "v"}})).await,
        "headers",
    );
    assert_invalid(
        create(json!({"url": ok, "headers": {"Content-Type": "text/plain"}})).await,
        "content-type",
    );
    assert_invalid(
        create(json!({"url": ok, "headers": ["x"]})).await,
        "headers",
    );
    let m = assert_invalid(
        create(json!({"url": ok, "event_types": ["order.*", "a b"]})).await,
        "event_types[1]",
    );
    assert!(m.contains("whitespace"), "{m}");
    assert_invalid(
        create(json!({"url": ok, "event_types": []})).await,
        "event_types",
    );
    let m = assert_invalid(create(json!({"url": ok, "colour": "blue"})).await, "colour");
    assert!(m.contains("unknown field"), "{m}");
    let (_, v) = create(json!({"url": ok, "colour": "blue"})).await;
    assert_eq!(v["error"]["field"], "colour");
    let m = assert_invalid(
        create(json!({"url": ok, "max_in_flight": 0})).await,
        "max_in_flight",
    );
    assert!(m.contains("between 1 and 1000"), "{m}");
    assert_invalid(
        create(json!({"url": ok, "max_in_flight": 1001})).await,
        "max_in_flight",
    );
    assert_invalid(
        create(json!({"url": ok, "max_in_flight": "many"})).await,
        "max_in_flight",
    );
    assert_invalid(
        create(json!({"url": ok, "rate_limit": 0})).await,
        "rate_limit",
    );
    assert_invalid(
        create(json!({"url": ok, "rate_limit": -1.5})).await,
        "rate_limit",
    );
    assert_invalid(
        create(json!({"url": ok, "tenant_id": ""})).await,
        "tenant_id",
    );
    assert_invalid(
        create(json!({"url": ok, "tenant_id": "acme", "all_tenants": true})).await,
        "all_tenants",
    );
    assert_invalid(
        create(json!({"url": ok, "enabled": "yes"})).await,
        "enabled",
    );
    assert_invalid(
        create(json!({"url": ok, "disabled_reason": "why"})).await,
        "disabled_reason",
    );

    // Not JSON, not an object, wrong content type, too large.
    let post = reqwest::Method::POST;
    let resp = api
        .raw(
            post.clone(),
            "/v1/endpoints",
            "application/json",
            "{\"url\": ",
        )
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_json");
    for body in ["[1]", "[]", "null", "\"x\"", "7"] {
        let (status, v) = api
            .raw(post.clone(), "/v1/endpoints", "application/json", body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["field"], "body", "{body}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("body: must be a JSON object, got "), "{m}");
    }
    let resp = api
        .raw(post.clone(), "/v1/endpoints", "application/json", "")
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_json");
    let resp = api
        .raw(
            post.clone(),
            "/v1/endpoints",
            "text/plain",
            format!("{{\"url\": \"{ok}\"}}"),
        )
        .await;
    assert_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let big = json!({"url": ok, "description": "x".repeat(70 * 1024)}).to_string();
    let resp = api
        .raw(post.clone(), "/v1/endpoints", "application/json", big)
        .await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let long = json!({"url": ok, "description": "x".repeat(5000)});
    assert_invalid(create(long).await, "description");

    // Query strings.
    assert_invalid(api.get("/v1/endpoints?limit=0").await, "limit");
    assert_invalid(api.get("/v1/endpoints?limit=501").await, "limit");
    assert_invalid(api.get("/v1/endpoints?cursor=bogus").await, "cursor");
    let (status, v) = api.get("/v1/endpoints?colour=blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    assert_invalid(api.get("/v1/deliveries?state=lost").await, "state");
    let resp = api.get("/v1/endpoints?tenant_id=%00").await;
    assert_error(resp, StatusCode::BAD_REQUEST, "invalid_request");
    assert_error(
        api.get("/v1/events/a%00b").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_invalid(
        create(json!({"url": ok, "description": "a\0b"})).await,
        "description",
    );

    // PATCH.
    let e = api.create_endpoint(json!({"url": ok})).await;
    let path = format!("/v1/endpoints/{}", id(&e));
    assert_invalid(api.patch(&path, json!({"url": null})).await, "url");
    assert_invalid(
        api.patch(&path, json!({"url": "http://[::1]/"})).await,
        "url",
    );
    assert_invalid(api.patch(&path, json!({"enabled": null})).await, "enabled");
    assert_invalid(
        api.patch(&path, json!({"max_in_flight": 0})).await,
        "max_in_flight",
    );
    assert_invalid(
        api.patch(&path, json!({"event_types": ["*"]})).await,
        "event_types",
    );
    assert_invalid(
        api.patch(&path, json!({"tenant_id": "acme", "all_tenants": true}))
            .await,
        "all_tenants",
    );
    assert_invalid(api.patch(&path, json!({"nope": 1})).await, "nope");
    let (_, unchanged) = api.get(&path).await;
    assert_eq!(unchanged["url"], ok);
    assert_eq!(unchanged["max_in_flight"], 16);

    // Subscriptions.
    let sub = |body: Value| api.post("/v1/subscriptions", body);
    let ep = id(&e);
    assert_invalid(
        sub(json!({"endpoint_id": ep, "event_types": []})).await,
        "event_types",
    );
    assert_invalid(
        sub(json!({"endpoint_id": ep, "event_types": ["ok", ""]})).await,
        "event_types[1]",
    );
    assert_invalid(
        sub(json!({"endpoint_id": ep, "event_types": "order.*"})).await,
        "event_types",
    );
    assert_invalid(sub(json!({"event_types": ["*"]})).await, "endpoint_id");
    let m = assert_invalid(
        sub(json!({"endpoint_id": 999999, "event_types": ["*"]})).await,
        "endpoint_id",
    );
    assert!(m.contains("does not exist"), "{m}");

    let c = db.client().await;
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.endpoints").await,
        1
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.subscriptions").await,
        0
    );
    engine.stop().await;
}

#[tokio::test]
async fn subscriptions_are_created_listed_changed_and_deleted() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;

    let e1 = api
        .create_endpoint(json!({"url": "https://a.example.com/", "event_types": ["order.*"]}))
        .await;
    let ep1 = id(&e1);
    let first = &e1["subscription"];
    assert_eq!(first["endpoint_id"], ep1);
    assert_eq!(first["event_types"], json!(["order.*"]));
    assert_eq!(first["active"], true);
    let e2 = api
        .create_endpoint(json!({"url": "https://b.example.com/"}))
        .await;
    assert!(
        e2.get("subscription").is_none(),
        "no event_types, no subscription"
    );
    let ep2 = id(&e2);

    let mut mine = vec![id(first)];
    for (i, ep) in [ep1, ep2, ep1, ep1, ep2, ep1].into_iter().enumerate() {
        let (status, s) = api
            .post(
                "/v1/subscriptions",
                json!({"endpoint_id": ep, "event_types": [format!("t{i}.*"), "x"], "active": i % 2 == 0}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{s}");
        assert_eq!(s["active"], i % 2 == 0);
        if ep == ep1 {
            mine.push(id(&s));
        }
    }
    assert_eq!(mine.len(), 5);

    // Endpoint 1's five subscriptions in three pages.
    let mut seen = Vec::new();
    let mut path = format!("/v1/subscriptions?endpoint_id={ep1}&limit=2");
    let mut pages = 0;
    loop {
        let (status, v) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        pages += 1;
        seen.extend(v["data"].as_array().unwrap().iter().map(id));
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/subscriptions?endpoint_id={ep1}&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!((pages, seen), (3, mine.clone()));
    let (_, all) = api.get("/v1/subscriptions").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 7);
    // A cursor of another list is refused.
    let (_, page) = api.get("/v1/endpoints?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_invalid(
        api.get(&format!("/v1/subscriptions?cursor={cursor}")).await,
        "cursor",
    );

    let path = format!("/v1/subscriptions/{}", mine[1]);
    let (status, s) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["event_types"], json!(["t0.*", "x"]));
    let (status, s) = api
        .patch(&path, json!({"event_types": ["invoice.paid"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["event_types"], json!(["invoice.paid"]));
    assert_eq!(s["active"], true, "untouched");
    let (_, s) = api.patch(&path, json!({"active": false})).await;
    assert_eq!(
        (s["active"].clone(), s["event_types"].clone()),
        (json!(false), json!(["invoice.paid"]))
    );
    assert_invalid(
        api.patch(&path, json!({"endpoint_id": ep2})).await,
        "endpoint_id",
    );
    assert_invalid(api.patch(&path, json!({"active": null})).await, "active");
    assert_invalid(
        api.patch(&path, json!({"event_types": ["a\tb"]})).await,
        "event_types[0]",
    );

    let (status, _) = api.delete(&path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(api.delete(&path).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        api.patch(&path, json!({"active": true})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_created_through_the_api_receives_events_published_afterwards() {
    let db = fresh_db().await;
    let c = db.client().await;
    let (engine, api) = start(&db, &["--allow-networks", "127.0.0.0/8"]).await;
    let rx = Receiver::ok(TEST_SECRET).await;

    // The allowlist opens loopback literals to the URL check too.
    let e = api
        .create_endpoint(json!({
            "url": rx.url(),
            "secret": TEST_SECRET,
            "tenant_id": "acme",
            "headers": {"X-Team": "payments"},
            "event_types": ["order.*"],
        }))
        .await;
    let ep = id(&e);
    // Still refused outside the allowlist.
    assert_invalid(
        api.post("/v1/endpoints", json!({"url": "http://10.0.0.1/"}))
            .await,
        "url",
    );

    let event_id: String = c
        .query_one(
            "SELECT outbox.publish('order.paid', '{\"id\": 1}'::jsonb, resource_key => 'order:1', tenant_id => 'acme')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        rx.wait_for_count(1, Duration::from_secs(10)).await,
        "no delivery"
    );
    let r = &rx.requests()[0];
    assert!(r.signature_ok);
    assert_eq!(r.id, event_id);
    assert_eq!(r.headers["x-team"], "payments");

    // The delivery and its attempt through the read-only views.
    wait_until(
        Duration::from_secs(10),
        "the delivery succeeded",
        || async {
            let (_, v) = api
                .get(&format!("/v1/deliveries?endpoint_id={ep}&state=succeeded"))
                .await;
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        },
    )
    .await;
    let (status, v) = api.get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["event"]["event_type"], "order.paid");
    assert_eq!(v["event"]["resource_key"], "order:1");
    assert!(v["event"].get("payload").is_none());
    assert_eq!(v["deliveries"][0]["state"], "succeeded");
    assert_eq!(v["deliveries"][0]["endpoint_id"], ep);
    assert_eq!(v["attempts"][0]["status_code"], 200);
    assert_error(
        api.get("/v1/events/evt_nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Disabled through the API: events published meanwhile are not for it (routing reads the
    // configuration committed when it runs); re-enabled: the next one goes.
    let path = format!("/v1/endpoints/{ep}");
    let (status, _) = api.patch(&path, json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    c.execute(
        "SELECT outbox.publish('order.shipped', '{\"n\": 2}'::jsonb, tenant_id => 'acme')",
        &[],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(10), "the event was routed", || async {
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    let (status, _) = api.patch(&path, json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK);
    c.execute(
        "SELECT outbox.publish('order.refunded', '{\"n\": 3}'::jsonb, tenant_id => 'acme')",
        &[],
    )
    .await
    .unwrap();
    assert!(
        rx.wait_for_count(2, Duration::from_secs(10)).await,
        "no delivery after re-enabling"
    );
    let bodies: Vec<Value> = rx
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[1], json!({"n": 3}), "{bodies:?}");
    assert!(!bodies.contains(&json!({"n": 2})), "{bodies:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_dead_revives_dead_deliveries() {
    let db = fresh_db().await;
    let c = db.client().await;
    let (engine, api) = start(
        &db,
        &[
            "--allow-networks",
            "127.0.0.0/8",
            "--max-age",
            "1s",
            "--circuit-failures",
            "1000",
        ],
    )
    .await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    let e = api
        .create_endpoint(json!({"url": rx.url(), "secret": TEST_SECRET, "event_types": ["*"]}))
        .await;
    let ep = id(&e);
    let path = format!("/v1/endpoints/{ep}/retry-dead");

    // Nothing dead yet.
    let (status, v) = api.post_empty(&path).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"revived": 0})));

    c.execute("SELECT outbox.publish('x', '{}'::jsonb)", &[])
        .await
        .unwrap();
    let dead_path = format!("/v1/deliveries?endpoint_id={ep}&state=dead");
    wait_until(Duration::from_secs(15), "the delivery is dead", || async {
        let (_, v) = api.get(&dead_path).await;
        v["data"].as_array().is_some_and(|d| d.len() == 1)
    })
    .await;
    let (_, v) = api.get(&dead_path).await;
    let dead = v["data"].as_array().cloned().unwrap_or_default();
    let delivery = id(&dead[0]);
    assert!(rx.count() >= 1);

    assert_error(
        api.post(&path, json!({"delivery_id": delivery + 1000}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        api.post_empty("/v1/endpoints/999999/retry-dead").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_invalid(
        api.post(&path, json!({"delivery": delivery})).await,
        "delivery",
    );

    rx.set_behaviour(always(Reply::ok()));
    let (status, v) = api.post(&path, json!({"delivery_id": delivery})).await;
    assert_eq!((status, v), (StatusCode::OK, json!({"revived": 1})));
    wait_until(
        Duration::from_secs(10),
        "the revived delivery succeeded",
        || async {
            let (_, v) = api
                .get(&format!("/v1/deliveries?endpoint_id={ep}&state=succeeded"))
                .await;
            v["data"].as_array().is_some_and(|d| d.len() == 1)
        },
    )
    .await;
    assert!(
        rx.requests()
            .iter()
            .any(|r| r.status() == Some(200) && r.signature_ok)
    );
    let (_, v) = api.post_empty(&path).await;
    assert_eq!(v, json!({"revived": 0}));
    engine.stop().await;
}

#[tokio::test]
async fn without_a_token_v1_is_open_to_plain_local_clients_only() {
    let db = fresh_db().await;
    let engine = Engine::start(config(&db, &[]))
        .await
        .expect("engine starts");
    let api = Api::new(&engine, None);

    let (status, v) = api.get("/v1/endpoints").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let localhost = format!(
        "http://localhost:{}/v1/endpoints",
        engine.listen_addr.port()
    );
    let resp = api.http.get(&localhost).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // A web page (Origin) or a DNS-rebound name (Host) is refused.
    let resp = api
        .send(
            api.request(reqwest::Method::POST, "/v1/endpoints")
                .header("origin", "https://evil.example")
                .json(&json!({"url": "https://evil.example/"})),
        )
        .await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden");
    let resp = api
        .send(
            api.request(reqwest::Method::GET, "/v1/endpoints")
                .header("host", "evil.example"),
        )
        .await;
    assert_error(resp, StatusCode::FORBIDDEN, "forbidden");
    // A cross-site form post (no preflight) cannot create anything either.
    let resp = api
        .raw(
            reqwest::Method::POST,
            "/v1/endpoints",
            "text/plain",
            "{\"url\": \"https://evil.example/\"}",
        )
        .await;
    assert_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    engine.stop().await;
}

#[tokio::test]
async fn subscription_filters_are_validated_by_postgresql_when_saved() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;
    let ep = id(&api
        .create_endpoint(json!({"url": "https://a.example.com/"}))
        .await);

    // A syntax error: 400 naming the field, with PostgreSQL's own message.
    let message = assert_invalid(
        api.post(
            "/v1/subscriptions",
            json!({"endpoint_id": ep, "event_types": ["*"], "filter": "$.amount >"}),
        )
        .await,
        "filter",
    );
    assert!(message.contains("syntax error"), "{message}");
    let message = assert_invalid(
        api.post(
            "/v1/subscriptions",
            json!({"endpoint_id": ep, "event_types": ["*"], "filter": "$.region == $region"}),
        )
        .await,
        "filter",
    );
    assert!(message.contains("unknown variable $region"), "{message}");
    assert_invalid(
        api.post(
            "/v1/subscriptions",
            json!({"endpoint_id": ep, "event_types": ["*"], "filter": " "}),
        )
        .await,
        "filter",
    );

    let filter = r#"$.amount > 1000 && $.currency == "EUR""#;
    let (status, s) = api
        .post(
            "/v1/subscriptions",
            json!({"endpoint_id": ep, "event_types": ["order.*"], "filter": filter}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["filter"], filter);
    let path = format!("/v1/subscriptions/{}", id(&s));
    assert_eq!(api.get(&path).await.1["filter"], filter);
    assert_invalid(
        api.patch(&path, json!({"filter": "$.a =="})).await,
        "filter",
    );
    let (status, s) = api.patch(&path, json!({"filter": null})).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["filter"], Value::Null);
    assert_eq!(s["event_types"], json!(["order.*"]), "untouched");

    // With the endpoint, on the subscription created with it.
    let e = api
        .create_endpoint(
            json!({"url": "https://b.example.com/", "event_types": ["*"],
                                "filter": "$tenant_id == \"eu\""}),
        )
        .await;
    assert_eq!(e["subscription"]["filter"], "$tenant_id == \"eu\"");
    assert_invalid(
        api.post(
            "/v1/endpoints",
            json!({"url": "https://c.example.com/", "filter": "$.a == 1"}),
        )
        .await,
        "filter",
    );
    engine.stop().await;
}

#[tokio::test]
async fn an_endpoints_own_retry_policy_is_validated_shown_and_cleared() {
    let db = fresh_db().await;
    let (engine, api) = start(&db, &[]).await;
    let e = api
        .create_endpoint(json!({"url": "https://a.example.com/",
                                "retry_schedule": "10s,1m", "max_age": "2h"}))
        .await;
    assert_eq!(
        (e["retry_schedule"].clone(), e["max_age"].clone()),
        (json!("10s,1m"), json!("2h"))
    );
    let path = format!("/v1/endpoints/{}", id(&e));
    assert_invalid(
        api.patch(&path, json!({"retry_schedule": "0s"})).await,
        "retry_schedule",
    );
    assert_invalid(
        api.patch(&path, json!({"retry_schedule": "soon"})).await,
        "retry_schedule",
    );
    assert_invalid(api.patch(&path, json!({"max_age": "-1h"})).await, "max_age");
    let (status, v) = api.patch(&path, json!({"retry_schedule": null})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["retry_schedule"].clone(), v["max_age"].clone()),
        (Value::Null, json!("2h"))
    );
    engine.stop().await;
}

#[tokio::test]
async fn sql_refuses_short_secrets_like_the_api_and_old_endpoints_keep_working() {
    let db = fresh_db().await;
    let c = db.client().await;
    let message = |e: tokio_postgres::Error| {
        let d = e.as_db_error().expect("a PostgreSQL error");
        (d.code().code().to_owned(), d.message().to_owned())
    };
    // 2 bytes, and 65 bytes: refused with 22023 and the length, never the value.
    let short = "whsec_AAA=";
    let long = format!("whsec_{}", "A".repeat(88));
    for secret in [short, long.as_str()] {
        let e = c
            .query_one(
                "SELECT outbox.add_endpoint('https://hooks.example.com/a', secret => $1)",
                &[&secret],
            )
            .await
            .map(|_| ())
            .map_err(message)
            .unwrap_err();
        assert_eq!(e.0, "22023", "{e:?}");
        assert!(
            e.1.contains("24 to 64 bytes") && !e.1.contains(secret),
            "{e:?}"
        );
    }
    let e = c
        .query_one(
            "SELECT outbox.add_endpoint('https://hooks.example.com/a', secret => 'whsec_A')",
            &[],
        )
        .await
        .map(|_| ())
        .map_err(message)
        .unwrap_err();
    assert!(e.1.contains("does not decode"), "{e:?}");

    // A good one is taken; rotating to a short one is refused and changes nothing.
    let good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id: i64 = c
        .query_one(
            "SELECT outbox.add_endpoint('https://hooks.example.com/a', secret => $1)",
            &[&good],
        )
        .await
        .unwrap()
        .get(0);
    let e = c
        .query_one("SELECT outbox.rotate_secret($1, $2)", &[&id, &short])
        .await
        .map(|_| ())
        .map_err(message)
        .unwrap_err();
    assert_eq!(e.0, "22023", "{e:?}");
    c.query_one("SELECT outbox.rotate_secret($1)", &[&id])
        .await
        .expect("a generated secret is long enough");

    // An endpoint stored before the check (here: with the trigger off) keeps its short
    // secret through other edits and through finishing a rotation.
    c.batch_execute(
        "ALTER TABLE outbox.endpoints DISABLE TRIGGER endpoints_check_new_secrets;
         UPDATE outbox.endpoints SET secrets = ARRAY['whsec_AAA='];
         ALTER TABLE outbox.endpoints ENABLE TRIGGER endpoints_check_new_secrets;",
    )
    .await
    .unwrap();
    c.execute("UPDATE outbox.endpoints SET enabled = false", &[])
        .await
        .expect("editing an old endpoint is not blocked by its old secret");
    c.execute(
        "UPDATE outbox.endpoints SET secrets = secrets || ARRAY[outbox.new_secret()]",
        &[],
    )
    .await
    .expect("only the secrets a statement adds are checked");
}
