//! Helpers of the event-log, console and browser tests: an engine with an admin token, a
//! `/v1` client, endpoints, waiting for deliveries to settle.

use std::time::Duration;

use outboxd::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use testkit::*;

pub use crate::support::{add_endpoint, scalar_i64};

pub const TOKEN: &str = "console-admin-token-0123456789abcdef";

/// An engine with the admin token, delivering to loopback; `extra` flags on top.
pub async fn start(db: &TestDb, extra: &[&str]) -> Engine {
    let mut args = vec![
        "--admin-token",
        TOKEN,
        "--allow-networks",
        "127.0.0.0/8",
        "--circuit-failures",
        "1000",
    ];
    args.extend_from_slice(extra);
    Engine::start(engine_config(db, &args))
        .await
        .expect("engine starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `/v1` with the token: every call gives the status and the JSON body (`Null` if empty).
pub struct Api {
    http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(engine: &Engine) -> Api {
        Api {
            http: http(),
            base: format!("http://{}", engine.listen_addr),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = rb.bearer_auth(TOKEN).send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let rb = self.http.post(format!("{}{path}", self.base));
        let rb = if body.is_null() { rb } else { rb.json(&body) };
        self.send(rb).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// `GET /v1/events` with a query string; panics unless 200.
    pub async fn search(&self, query: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body
    }
}

/// Waits until every event is routed and no delivery is pending or in flight.
pub async fn wait_settled(c: &tokio_postgres::Client) {
    wait_until(Duration::from_secs(20), "every delivery settled", || async {
        scalar_i64(
            c,
            "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL)
                  + (SELECT count(*) FROM outbox.deliveries WHERE state IN ('pending', 'delivering'))",
        )
        .await
            == 0
    })
    .await;
}

/// The status (`outbox.delivery_status`) of a delivery.
pub async fn status_of(c: &tokio_postgres::Client, delivery_id: i64) -> String {
    c.query_one(
        "SELECT outbox.delivery_status(state, held, attempt_count) FROM outbox.deliveries WHERE id = $1",
        &[&delivery_id],
    )
    .await
    .expect("a delivery")
    .get(0)
}

/// The id of the delivery of `event_id` to `endpoint_id` (waiting for the router to create
/// it).
pub async fn delivery_of(c: &tokio_postgres::Client, event_id: &str, endpoint_id: i64) -> i64 {
    let query = "SELECT d.id FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
                  WHERE e.event_id = $1 AND d.endpoint_id = $2 ORDER BY d.id LIMIT 1";
    wait_until(Duration::from_secs(10), "the event routed", || async {
        c.query_opt(query, &[&event_id, &endpoint_id])
            .await
            .expect("deliveries")
            .is_some()
    })
    .await;
    c.query_one(query, &[&event_id, &endpoint_id])
        .await
        .expect("a delivery")
        .get(0)
}
