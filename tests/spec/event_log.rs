//! The event log over `/v1` (issue 10): the search, one delivery with its attempts, retry,
//! resend, retry dead in a time range, replay, test events, event types, and the OpenAPI
//! document. Real PostgreSQL, an in-process engine, real receivers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::*;

use crate::console_support::*;
use crate::support::Event;

fn event_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

/// A receiver that fails (500, with a body) until `ok` is set.
async fn switchable_receiver(ok: Arc<AtomicBool>) -> Receiver {
    Receiver::start(
        TEST_SECRET,
        script(move |_| {
            if ok.load(Ordering::SeqCst) {
                Reply::ok()
            } else {
                Reply::status(500).with_body("{\"error\": \"database down\"}")
            }
        }),
    )
    .await
}

#[tokio::test]
async fn search_finds_events_by_id_key_type_pattern_tenant_endpoint_status_and_time() {
    let db = fresh_db().await;
    let c = db.client().await;
    let good = Receiver::ok(TEST_SECRET).await;
    let bad = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    let ep_good = add_endpoint(&c, &good.url(), &["*"], Some("acme")).await;
    let ep_bad = add_endpoint(&c, &bad.url(), &["order.*"], Some("acme")).await;
    // An internal endpoint for every tenant's invoices, failing too.
    let ep_all = add_endpoint(&c, &bad.url(), &["invoice.*"], None).await;
    c.execute(
        "UPDATE outbox.endpoints SET all_tenants = true WHERE id = $1",
        &[&ep_all],
    )
    .await
    .unwrap();
    let engine = start(&db, &["--max-age", "300ms"]).await;
    let api = Api::new(&engine);

    let t0 = chrono::Utc::now() - chrono::Duration::seconds(1);
    let paid = Event::new("order.paid")
        .key("order:1")
        .tenant("acme")
        .publish(&c)
        .await;
    let shipped = Event::new("order.shipped")
        .key("order:1")
        .tenant("acme")
        .publish(&c)
        .await;
    let invoice = Event::new("invoice.paid")
        .key("invoice:9")
        .tenant("acme")
        .publish(&c)
        .await;
    let other = Event::new("order.paid")
        .key("order:2")
        .tenant("globex")
        .publish(&c)
        .await;
    wait_settled(&c).await;
    let t1 = chrono::Utc::now() + chrono::Duration::seconds(1);

    let page = api.search(&format!("q={paid}")).await;
    assert_eq!(event_ids(&page), [paid.as_str()], "by event_id");
    let deliveries = page["data"][0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2, "{page}");
    let on_bad = deliveries
        .iter()
        .find(|d| d["endpoint_id"] == ep_bad)
        .unwrap();
    assert_eq!(on_bad["status"], "dead");
    assert_eq!(on_bad["last_error_kind"], "status");
    assert_eq!(on_bad["last_status"], 500);

    let by_key = api.search("q=order:1").await;
    assert_eq!(
        event_ids(&by_key),
        [shipped.clone(), paid.clone()],
        "newest first"
    );
    let pattern = api.search("q=type:order.*").await;
    assert_eq!(
        event_ids(&pattern),
        [other.clone(), shipped.clone(), paid.clone()]
    );
    let exact = api.search("event_type=invoice.paid").await;
    assert_eq!(event_ids(&exact), [invoice.as_str()]);
    let tenant = api.search("tenant_id=globex").await;
    assert_eq!(event_ids(&tenant), [other.as_str()]);
    let endpoint = api.search(&format!("endpoint_id={ep_bad}")).await;
    assert_eq!(event_ids(&endpoint), [shipped.clone(), paid.clone()]);
    let dead = api.search("status=dead").await;
    assert_eq!(
        event_ids(&dead),
        [invoice.clone(), shipped.clone(), paid.clone()]
    );
    // A tenant and a status: through the endpoints that can hold the tenant's deliveries,
    // its own and the internal ones for all tenants.
    let acme_dead = api.search("tenant_id=acme&status=dead").await;
    assert_eq!(
        event_ids(&acme_dead),
        [invoice.clone(), shipped.clone(), paid.clone()]
    );
    let globex_dead = api.search("tenant_id=globex&status=dead").await;
    assert_eq!(event_ids(&globex_dead), Vec::<String>::new());
    let acme_dead_orders = api
        .search("tenant_id=acme&status=dead&q=type:order.*")
        .await;
    assert_eq!(
        event_ids(&acme_dead_orders),
        [shipped.clone(), paid.clone()]
    );
    let none = api
        .search(&format!("status=dead&endpoint_id={ep_good}"))
        .await;
    assert_eq!(event_ids(&none), Vec::<String>::new());
    let succeeded = api.search("status=succeeded&q=type:order.*").await;
    assert_eq!(event_ids(&succeeded), [shipped.clone(), paid.clone()]);
    let combined = api
        .search("q=type:*.paid&tenant_id=acme&status=succeeded")
        .await;
    assert_eq!(event_ids(&combined), [invoice.clone(), paid.clone()]);

    let from = urlencode(&t0.to_rfc3339());
    let to = urlencode(&t1.to_rfc3339());
    assert_eq!(
        event_ids(&api.search(&format!("from={from}&to={to}")).await).len(),
        4
    );
    assert_eq!(event_ids(&api.search(&format!("from={to}")).await).len(), 0);
    assert_eq!(event_ids(&api.search(&format!("to={from}")).await).len(), 0);
    engine.stop().await;
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn search_pages_newest_first_with_a_cursor_and_refuses_bad_input() {
    let db = fresh_db().await;
    let c = db.client().await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let mut published = Vec::new();
    for i in 0..7 {
        published.push(
            Event::new("page.test")
                .key(&format!("k{i}"))
                .publish(&c)
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for expected in [3, 3, 1] {
        let page = api.search(&format!("limit=3&cursor={cursor}")).await;
        let ids = event_ids(&page);
        assert_eq!(ids.len(), expected, "{page}");
        seen.extend(ids);
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    }
    assert!(cursor.is_empty(), "the last page has no next cursor");
    published.reverse();
    assert_eq!(seen, published, "every event once, newest first");

    for (query, field) in [
        ("cursor=garbage", "cursor"),
        ("limit=0", "limit"),
        ("status=lost", "status"),
        ("q=type:a%20b", "event_type"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
    ] {
        let (status, body) = api.get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = api.get("/v1/events?bogus=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    engine.stop().await;
}

/// A lane head that is being sent right now (delivering: a receiver that takes its time) is
/// what the held deliveries behind it wait behind (V20 finds it among the endpoint's in-flight
/// deliveries rather than in an index the claim writes to).
#[tokio::test]
async fn a_held_delivery_waits_behind_a_head_in_flight() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_secs(20))),
    )
    .await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &["--request-timeout", "30s", "--shutdown-grace", "1s"]).await;
    let api = Api::new(&engine);
    let head = Event::new("x").key("R").publish(&c).await;
    let second = Event::new("x").key("R").publish(&c).await;
    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
    let head_d = delivery_of(&c, &head, ep).await;
    let second_d = delivery_of(&c, &second, ep).await;
    assert_eq!(status_of(&c, head_d).await, "delivering");
    let (status, d) = api.get(&format!("/v1/deliveries/{second_d}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "held");
    assert_eq!(d["lane"]["waiting_behind"], head_d, "{d}");
    assert_eq!(d["lane"]["held_ahead"], 0, "{d}");
    engine.stop().await;
}

#[tokio::test]
async fn a_held_delivery_says_what_it_waits_behind_and_cannot_jump_its_lane() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(503))).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    // The head fails once and then waits an hour: the two behind it stay held.
    let engine = start(&db, &["--retry-schedule", "1h"]).await;
    let api = Api::new(&engine);
    let head = Event::new("x").key("R").publish(&c).await;
    let second = Event::new("x").key("R").publish(&c).await;
    let third = Event::new("x").key("R").publish(&c).await;
    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
    let head_d = delivery_of(&c, &head, ep).await;
    wait_until(Duration::from_secs(10), "the head retrying", || async {
        status_of(&c, head_d).await == "retrying"
    })
    .await;

    // All three routed (the head may be retrying before the third is).
    delivery_of(&c, &second, ep).await;
    let third_d = delivery_of(&c, &third, ep).await;
    let held = api.search("status=held").await;
    assert_eq!(event_ids(&held), [third.clone(), second.clone()]);
    let retrying = api.search("status=retrying").await;
    assert_eq!(event_ids(&retrying), [head.as_str()]);

    let (status, d) = api.get(&format!("/v1/deliveries/{third_d}")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["status"], "held");
    assert_eq!(d["lane"]["waiting_behind"], head_d);
    assert_eq!(d["lane"]["held_ahead"], 1, "the second one is ahead of it");
    let (status, head_json) = api.get(&format!("/v1/deliveries/{head_d}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head_json["attempts"][0]["status_code"], 503);
    assert!(head_json["lane"].is_null());

    let (status, body) = api
        .post(&format!("/v1/deliveries/{third_d}/retry"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("delivery {head_d}")), "{message}");
    let (status, _) = api.post("/v1/deliveries/999999/retry", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    engine.stop().await;
}

#[tokio::test]
async fn retry_revives_a_dead_delivery_and_retry_now_hurries_a_retrying_one() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Arc::new(AtomicBool::new(false));
    let rx = switchable_receiver(ok.clone()).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    // One failure an hour apart: the second event stays "retrying"; the first is published
    // as if a day old, so its first failure is its last.
    let engine = start(&db, &["--retry-schedule", "1h", "--max-age", "1h"]).await;
    let api = Api::new(&engine);
    let old: String = c
        .query_one(
            "INSERT INTO outbox.events (event_type, payload, created_at)
             VALUES ('order.refunded', '{}', now() - interval '1 day') RETURNING event_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let fresh = Event::new("order.paid").publish(&c).await;
    let (dead, retrying) = (
        delivery_of(&c, &old, ep).await,
        delivery_of(&c, &fresh, ep).await,
    );
    wait_until(
        Duration::from_secs(10),
        "one dead, one retrying",
        || async {
            status_of(&c, dead).await == "dead" && status_of(&c, retrying).await == "retrying"
        },
    )
    .await;
    let (_, d) = api.get(&format!("/v1/deliveries/{dead}")).await;
    assert_eq!(d["attempts"][0]["error_kind"], "status");
    assert!(
        d["attempts"][0]["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("database down"),
        "the receiver's answer is kept: {d}"
    );

    ok.store(true, Ordering::SeqCst);
    let (status, after) = api
        .post(&format!("/v1/deliveries/{dead}/retry"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_ne!(after["status"], "dead");
    let (status, _) = api
        .post(&format!("/v1/deliveries/{retrying}/retry"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_until(Duration::from_secs(10), "both succeeded", || async {
        status_of(&c, dead).await == "succeeded" && status_of(&c, retrying).await == "succeeded"
    })
    .await;
    let (status, body) = api
        .post(&format!("/v1/deliveries/{dead}/retry"), Value::Null)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a succeeded one is resent, not retried: {body}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn resend_sends_a_succeeded_delivery_again_with_the_same_webhook_id() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let id = Event::new("order.paid").key("order:1").publish(&c).await;
    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
    let d = delivery_of(&c, &id, ep).await;
    wait_until(Duration::from_secs(10), "succeeded", || async {
        status_of(&c, d).await == "succeeded"
    })
    .await;
    let (status, body) = api
        .post(&format!("/v1/deliveries/{d}/resend"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(rx.wait_for_count(2, Duration::from_secs(10)).await);
    let requests = rx.requests();
    assert_eq!(requests[0].id, id);
    assert_eq!(requests[1].id, id, "same webhook-id");
    assert!(requests[1].signature_ok);
    wait_settled(&c).await;
    let (_, after) = api.get(&format!("/v1/deliveries/{d}")).await;
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["attempts"].as_array().unwrap().len(), 2, "{after}");
    engine.stop().await;
}

#[tokio::test]
async fn retry_dead_of_a_time_range_revives_only_that_range() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Arc::new(AtomicBool::new(false));
    let rx = switchable_receiver(ok.clone()).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &["--max-age", "1h"]).await;
    let api = Api::new(&engine);
    let mut ids = Vec::new();
    for hours_ago in [30, 26] {
        let id: String = c
            .query_one(
                "INSERT INTO outbox.events (event_type, payload, created_at)
                 VALUES ('x', '{}', now() - make_interval(hours => $1)) RETURNING event_id",
                &[&hours_ago],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
    }
    wait_settled(&c).await;
    assert_eq!(event_ids(&api.search("status=dead").await).len(), 2);
    ok.store(true, Ordering::SeqCst);
    let since = (chrono::Utc::now() - chrono::Duration::hours(28)).to_rfc3339();
    let (status, body) = api
        .post(
            &format!("/v1/endpoints/{ep}/retry-dead"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revived"], 1);
    wait_settled(&c).await;
    assert_eq!(
        status_of(&c, delivery_of(&c, &ids[0], ep).await).await,
        "dead"
    );
    assert_eq!(
        status_of(&c, delivery_of(&c, &ids[1], ep).await).await,
        "succeeded"
    );
    let (status, body) = api
        .post(
            &format!("/v1/endpoints/{ep}/retry-dead"),
            json!({"delivery_id": 1, "since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .post(&format!("/v1/endpoints/{ep}/retry-dead"), Value::Null)
        .await;
    assert_eq!(
        (status, &body["revived"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
    engine.stop().await;
}

/// Per resource ("r"), the "seq"s a receiver got, in arrival order.
fn seqs_by_resource(rx: &Receiver) -> HashMap<String, Vec<i64>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for r in rx.requests() {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        out.entry(v["r"].as_str().unwrap().to_owned())
            .or_default()
            .push(v["seq"].as_i64().unwrap());
    }
    out
}

#[tokio::test]
async fn replay_backfills_a_new_endpoint_in_per_resource_order_and_nothing_newer_goes_first() {
    let db = fresh_db().await;
    let c = db.client().await;
    let old_rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &old_rx.url(), &["*"], Some("acme")).await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let publish = |r: &'static str, seq: i64| {
        Event::new("order.updated")
            .key(r)
            .tenant("acme")
            .payload(json!({"r": r, "seq": seq}))
    };
    for seq in 0..5 {
        for r in ["A", "B", "C"] {
            publish(r, seq).publish(&c).await;
        }
    }
    // Not replayed: another type, another tenant.
    Event::new("invoice.paid").tenant("acme").publish(&c).await;
    Event::new("order.updated")
        .key("A")
        .tenant("globex")
        .payload(json!({"r": "X", "seq": 0}))
        .publish(&c)
        .await;
    wait_settled(&c).await;

    // The new subscriber: created disabled, it gets nothing routed; the receiver is slow, so
    // live events routed right after the replay would overtake replayed ones if they could.
    let new_rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_millis(20))),
    )
    .await;
    let (status, created) = api
        .post(
            "/v1/endpoints",
            json!({"url": new_rx.url(), "tenant_id": "acme", "enabled": false,
                   "event_types": ["order.*"], "secret": TEST_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ep = created["id"].as_i64().unwrap();
    for r in ["A", "B"] {
        publish(r, 5).publish(&c).await;
    }
    wait_settled(&c).await;
    let (status, done) = api
        .post(
            &format!("/v1/endpoints/{ep}/replay"),
            json!({"since": since.to_rfc3339(), "enable": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["queued"], 17, "{done}");
    assert_eq!(done["enabled"], true);
    for r in ["A", "C"] {
        publish(r, 6).publish(&c).await;
    }
    assert!(new_rx.wait_for_count(19, Duration::from_secs(20)).await);
    wait_settled(&c).await;
    let seqs = seqs_by_resource(&new_rx);
    assert_eq!(seqs["A"], [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs["B"], [0, 1, 2, 3, 4, 5]);
    assert_eq!(seqs["C"], [0, 1, 2, 3, 4, 6]);
    assert!(new_rx.requests().iter().all(|r| r.signature_ok));

    // Running it again queues nothing that is still on its way, and everything else again.
    let (status, again) = api
        .post(
            &format!("/v1/endpoints/{ep}/replay"),
            json!({"since": since.to_rfc3339(), "event_types": ["order.updated"],
                   "until": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["queued"], 19, "{again}");
    assert_eq!(again["enabled"], false);
    engine.stop().await;
}

#[tokio::test]
async fn replay_refuses_what_it_cannot_do() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ep = add_endpoint(&c, "http://127.0.0.1:9/", &["*"], None).await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let now = chrono::Utc::now().to_rfc3339();
    for (body, code) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"since": now, "until": now}), StatusCode::BAD_REQUEST),
        (
            json!({"since": "2026-01-01T00:00:00Z", "until": now, "enable": true}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"since": now, "event_types": []}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"since": now, "bogus": 1}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = api
            .post(&format!("/v1/endpoints/{ep}/replay"), body.clone())
            .await;
        assert_eq!(status, code, "{body}: {answer}");
    }
    let (status, _) = api
        .post("/v1/endpoints/999999/replay", json!({"since": now}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    c.execute("UPDATE outbox.subscriptions SET active = false", &[])
        .await
        .unwrap();
    let (status, body) = api
        .post(&format!("/v1/endpoints/{ep}/replay"), json!({"since": now}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no active subscription: {body}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_test_event_goes_to_one_endpoint_only_and_event_types_are_counted() {
    let db = fresh_db().await;
    let c = db.client().await;
    let a = Receiver::ok(TEST_SECRET).await;
    let b = Receiver::ok(TEST_SECRET).await;
    let ep_a = add_endpoint(&c, &a.url(), &["*"], Some("acme")).await;
    let ep_b = add_endpoint(&c, &b.url(), &["*"], Some("acme")).await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    Event::new("order.paid").tenant("acme").publish(&c).await;
    Event::new("order.paid").tenant("acme").publish(&c).await;
    Event::new("invoice.paid").publish(&c).await;
    wait_settled(&c).await;

    let (status, t) = api
        .post(&format!("/v1/endpoints/{ep_a}/test"), Value::Null)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t}");
    assert!(
        a.wait_for(Duration::from_secs(10), |rs| rs
            .iter()
            .any(|r| r.id == t["event_id"]))
            .await
    );
    wait_settled(&c).await;
    assert!(
        b.requests().iter().all(|r| r.id != t["event_id"]),
        "only A gets it"
    );
    let body: Value = serde_json::from_slice(&a.requests().last().unwrap().body).unwrap();
    assert_eq!(body["type"], "outboxd.test");
    assert_eq!(body["endpoint_id"], ep_a);
    let found = api.search("q=type:outboxd.test").await;
    assert_eq!(
        event_ids(&found),
        [t["event_id"].as_str().unwrap().to_owned()]
    );

    let (_, types) = api.get("/v1/event-types").await;
    let counts: HashMap<String, i64> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event_type"].as_str().unwrap().to_owned(),
                t["events"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts["order.paid"], 2);
    assert_eq!(counts["invoice.paid"], 1);
    assert_eq!(counts["outboxd.test"], 1);
    let (_, acme) = api.get("/v1/event-types?tenant_id=acme").await;
    assert_eq!(acme["data"].as_array().unwrap().len(), 2, "{acme}");

    api.post(&format!("/v1/endpoints/{ep_b}/test"), Value::Null)
        .await;
    c.execute(
        "UPDATE outbox.endpoints SET enabled = false WHERE id = $1",
        &[&ep_b],
    )
    .await
    .unwrap();
    let (status, _) = api
        .post(&format!("/v1/endpoints/{ep_b}/test"), Value::Null)
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a disabled endpoint gets no test event"
    );
    let (status, health) = api.get(&format!("/v1/endpoints/{ep_a}/health")).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["success_rate_last_hour"], 1.0);
    assert_eq!(health["circuit"], "closed");
    engine.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_everything_in_it_is_routed() {
    let db = fresh_db().await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let http = http();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "999999")
            .replace("{event_id}", "no-such-event");
        for method in item.as_object().unwrap().keys() {
            let Ok(m) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            let resp = http
                .request(m, format!("{}{concrete}", api.base))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !text.contains("no such route"),
                "{method} {path} is not routed: {text}"
            );
        }
    }
    assert!(operations >= 25, "{operations}");
    let (status, _) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let anonymous = http
        .get(format!("{}/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::UNAUTHORIZED,
        "behind the token like all of /v1"
    );
    engine.stop().await;
}

/// Each `sql/upgrade/` script (run with psql before migrating a large outbox) builds its
/// migration's indexes exactly as the migration does: same definitions, valid.
#[tokio::test]
async fn the_upgrade_scripts_build_the_indexes_concurrently_exactly_as_the_migrations_do() {
    upgrade_script_builds(
        "V9_indexes_concurrently.sql",
        &[
            "events_resource_key",
            "events_event_type",
            "events_tenant",
            "deliveries_status",
            "deliveries_succeeded",
            "deliveries_endpoint_status",
            // deliveries_lane_head: built by this script too, dropped by V20.
        ],
    )
    .await;
    upgrade_script_builds(
        "V19_index_concurrently.sql",
        &["deliveries_pending_created"],
    )
    .await;
    upgrade_script_builds(
        "V20_index_concurrently.sql",
        &["deliveries_lane_pending_head"],
    )
    .await;
}

async fn upgrade_script_builds(file: &str, names: &[&str]) {
    let db = fresh_db().await;
    let c = db.client().await;
    let defs = "SELECT c.relname::text, pg_get_indexdef(c.oid), i.indisvalid
                  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE c.relname = ANY($1) ORDER BY 1";
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String, bool)> {
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let migrated = read(c.query(defs, &[&names]).await.unwrap());
    assert_eq!(migrated.len(), names.len(), "{file}: {migrated:?}");
    for n in &names {
        c.batch_execute(&format!("DROP INDEX outbox.{n}"))
            .await
            .unwrap();
    }
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sql/upgrade")
            .join(file),
    )
    .unwrap();
    // Statement by statement, outside any transaction, as psql runs it.
    for statement in script.split(";\n").filter(|s| {
        s.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
    }) {
        c.simple_query(statement)
            .await
            .unwrap_or_else(|e| panic!("{file}: {statement}: {e}"));
    }
    assert_eq!(
        read(c.query(defs, &[&names]).await.unwrap()),
        migrated,
        "{file}"
    );
}
