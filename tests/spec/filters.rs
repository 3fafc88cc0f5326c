//! Content filters on subscriptions (issue 13; README "Content filters"): evaluated by
//! PostgreSQL while routing, on a real PostgreSQL and real HTTP receivers. Each test has its
//! own fresh database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use testkit::*;

use crate::engine::{body_json, metrics_text, start, wait_all_finished};
use crate::support::{Event, scalar_i64};

/// `outbox.add_endpoint` with a filter on the subscription it creates.
async fn add_filtered(
    c: &tokio_postgres::Client,
    url: &str,
    filter: Option<&str>,
) -> Result<i64, tokio_postgres::Error> {
    let types = vec!["*".to_owned()];
    Ok(c.query_one(
        "SELECT outbox.add_endpoint($1, $2, secret => $3, filter => $4)",
        &[&url, &types, &TEST_SECRET, &filter],
    )
    .await?
    .get(0))
}

/// The `e` of every payload a receiver got, sorted.
fn names(rx: &Receiver) -> Vec<String> {
    let mut v: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| body_json(r)["e"].as_str().unwrap_or("?").to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn filters_decide_per_subscription_and_runtime_errors_are_counted_not_delivered() {
    let db = fresh_db().await;
    let c = db.client().await;
    let big_eur = Receiver::ok(TEST_SECRET).await;
    let paid = Receiver::ok(TEST_SECRET).await;
    let eu_tenant = Receiver::ok(TEST_SECRET).await;
    let eu_header = Receiver::ok(TEST_SECRET).await;
    let strict = Receiver::ok(TEST_SECRET).await;
    let either = Receiver::ok(TEST_SECRET).await;
    let everything = Receiver::ok(TEST_SECRET).await;
    let big_eur_filter = r#"$.amount > 1000 && $.currency == "EUR""#;
    let strict_filter = "strict $.amount > 10";
    add_filtered(&c, &big_eur.url(), Some(big_eur_filter))
        .await
        .unwrap();
    add_filtered(&c, &paid.url(), Some(r#"$.status == "paid""#))
        .await
        .unwrap();
    let eu = add_filtered(&c, &eu_tenant.url(), Some(r#"$tenant_id == "eu""#))
        .await
        .unwrap();
    c.execute(
        "UPDATE outbox.endpoints SET all_tenants = true WHERE id = $1",
        &[&eu],
    )
    .await
    .unwrap();
    add_filtered(&c, &eu_header.url(), Some(r#"$headers."x-region" == "eu""#))
        .await
        .unwrap();
    add_filtered(&c, &strict.url(), Some(strict_filter))
        .await
        .unwrap();
    // Two filtered subscriptions on one endpoint: an event goes once if either matches.
    let two = add_filtered(&c, &either.url(), Some("$.amount > 1000"))
        .await
        .unwrap();
    c.execute(
        r#"INSERT INTO outbox.subscriptions (endpoint_id, event_types, filter)
           VALUES ($1, '{*}', '$.status == "paid"')"#,
        &[&two],
    )
    .await
    .unwrap();
    add_filtered(&c, &everything.url(), None).await.unwrap();
    let engine = start(&db, &[]).await;

    for (e, payload) in [
        (
            "big-eur",
            json!({"amount": 1500, "currency": "EUR", "status": "paid"}),
        ),
        ("big-usd", json!({"amount": 1500.5, "currency": "USD"})),
        ("small-paid", json!({"amount": 5, "status": "paid"})),
        // A missing field: false in lax mode (no error), an error in strict mode.
        ("no-amount", json!({"status": "open"})),
        // A type mismatch (a string compared with a number): unknown, counted as an error.
        ("text-amount", json!({"amount": "1500", "currency": "EUR"})),
    ] {
        let mut payload = payload;
        payload["e"] = json!(e);
        Event::new("order.created")
            .payload(payload)
            .publish(&c)
            .await;
    }
    Event::new("order.created")
        .headers(json!({"X-Region": "eu"}))
        .payload(json!({"e": "eu-header", "amount": 1}))
        .publish(&c)
        .await;
    for tenant in ["eu", "us"] {
        Event::new("order.created")
            .tenant(tenant)
            .payload(json!({"e": format!("{tenant}-tenant"), "amount": 1}))
            .publish(&c)
            .await;
    }
    wait_all_finished(&c, Duration::from_secs(15)).await;

    assert_eq!(names(&big_eur), ["big-eur"]);
    assert_eq!(names(&paid), ["big-eur", "small-paid"]);
    assert_eq!(names(&eu_tenant), ["eu-tenant"]);
    assert_eq!(names(&eu_header), ["eu-header"]);
    assert_eq!(names(&strict), ["big-eur", "big-usd"]);
    assert_eq!(names(&either), ["big-eur", "big-usd", "small-paid"]);
    assert_eq!(
        names(&everything),
        [
            "big-eur",
            "big-usd",
            "eu-header",
            "no-amount",
            "small-paid",
            "text-amount"
        ]
    );

    // The evaluations that could not decide: the strict filter on the payload without an
    // amount and on the text amount; the lax ones on the text amount.
    let rows = c
        .query(
            "SELECT f.filter, e.payload->>'e', f.message
               FROM outbox.filter_errors f JOIN outbox.events e USING (event_id)
              ORDER BY f.id",
            &[],
        )
        .await
        .unwrap();
    let mut errors: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &rows {
        errors.insert((r.get(0), r.get(1)), r.get(2));
    }
    let keys: Vec<(&str, &str)> = errors
        .keys()
        .map(|(f, e)| (f.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("$.amount > 1000", "text-amount"),
            (r#"$.amount > 1000 && $.currency == "EUR""#, "text-amount"),
            (strict_filter, "no-amount"),
            (strict_filter, "text-amount"),
        ],
        "{rows:?}"
    );
    assert_eq!(rows.len(), 4, "one row per (event, subscription)");
    assert!(errors.values().all(|m| m.contains("unknown")), "{errors:?}");
    // Every routed event is marked routed, filtered out or not.
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL"
        )
        .await,
        0
    );

    // And the operator sees them in /metrics too.
    let text = metrics_text(&engine).await;
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    };
    assert!(counter("outboxd_filter_errors_total") >= 4.0);
    assert!(counter("outboxd_deliveries_filtered_total") >= 1.0);
    engine.stop().await;
}

/// Comparing a date with a timestamptz raises even with `silent => true`: that statement fails,
/// the router routes the batch again in safe mode, and the one bad evaluation is an error row
/// while everything else in the batch is routed as usual.
#[tokio::test]
async fn a_filter_error_that_silent_mode_does_not_catch_is_counted_and_routing_goes_on() {
    let db = fresh_db().await;
    let c = db.client().await;
    let dated = Receiver::ok(TEST_SECRET).await;
    let everything = Receiver::ok(TEST_SECRET).await;
    let filter = r#"$.at.datetime() < "2021-01-01 10:00:00+01".datetime()"#;
    add_filtered(&c, &dated.url(), Some(filter)).await.unwrap();
    add_filtered(&c, &everything.url(), None).await.unwrap();
    // Published before the engine starts: one routing batch holds all three.
    for (e, at) in [
        ("before", "2020-06-01T00:00:00+00:00"),
        ("a-date", "2020-06-01"),
        ("after", "2022-06-01T00:00:00+00:00"),
    ] {
        Event::new("order.created")
            .key("order-1")
            .payload(json!({"e": e, "at": at}))
            .publish(&c)
            .await;
    }
    let engine = start(&db, &[]).await;
    wait_all_finished(&c, Duration::from_secs(15)).await;
    assert_eq!(names(&dated), ["before"]);
    assert_eq!(names(&everything), ["a-date", "after", "before"]);
    let rows = c
        .query(
            "SELECT f.filter, e.payload->>'e', f.message
               FROM outbox.filter_errors f JOIN outbox.events e USING (event_id)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].get::<_, String>(0), filter);
    assert_eq!(rows[0].get::<_, String>(1), "a-date");
    assert!(
        rows[0].get::<_, String>(2).contains("time zone"),
        "{}",
        rows[0].get::<_, String>(2)
    );
    engine.stop().await;
}

/// An operator's replay goes through the endpoint's subscriptions as routing does: by type,
/// then by content filter (any matching subscription without a filter lets everything
/// through), and a filter that cannot decide is recorded, not delivered.
#[tokio::test]
async fn a_replay_applies_the_endpoints_filters_like_routing() {
    use crate::console_support::{Api, start, wait_settled};
    let db = fresh_db().await;
    let c = db.client().await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    for (e, ty, amount) in [
        ("small", "order.created", json!(5)),
        ("big", "order.created", json!(1500)),
        ("text", "order.created", json!("1500")),
        ("refund", "order.refunded", json!(5)),
        ("invoice", "invoice.paid", json!(5000)),
    ] {
        Event::new(ty)
            .key("order-1")
            .payload(json!({"e": e, "amount": amount}))
            .publish(&c)
            .await;
    }
    wait_settled(&c).await;

    // Created after those events: disabled, orders over 1 000, and every refund.
    let rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_filtered(&c, &rx.url(), Some("$.amount > 1000"))
        .await
        .unwrap();
    c.execute(
        "UPDATE outbox.subscriptions SET event_types = '{order.created}' WHERE endpoint_id = $1",
        &[&ep],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO outbox.subscriptions (endpoint_id, event_types) VALUES ($1, '{order.refunded}')",
        &[&ep],
    )
    .await
    .unwrap();
    let (status, done) = api
        .post(
            &format!("/v1/endpoints/{ep}/replay"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{done}");
    assert_eq!(done["queued"], 2, "{done}");
    assert_eq!(done["filtered"], 2, "{done}");
    wait_settled(&c).await;
    assert_eq!(names(&rx), ["big", "refund"]);
    let errors: Vec<String> = c
        .query(
            "SELECT e.payload->>'e' FROM outbox.filter_errors f JOIN outbox.events e USING (event_id)
              WHERE f.endpoint_id = $1",
            &[&ep],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(errors, ["text"]);
    engine.stop().await;
}

#[tokio::test]
async fn a_filter_that_is_not_valid_sql_json_path_is_refused_when_saved() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;

    let err = add_filtered(&c, &rx.url(), Some("$.amount >"))
        .await
        .expect_err("a syntax error is refused");
    let db_err = err.as_db_error().expect("a PostgreSQL error");
    assert!(
        db_err.message().contains("syntax error"),
        "{}",
        db_err.message()
    );
    let err = add_filtered(&c, &rx.url(), Some("$.region == $region"))
        .await
        .expect_err("an unknown variable is refused");
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.message().contains("unknown variable $region")),
        "{err:?}"
    );
    // The column's CHECK holds for direct writes too.
    let id = add_filtered(&c, &rx.url(), Some("$.ok == true"))
        .await
        .unwrap();
    let err = c
        .execute(
            "UPDATE outbox.subscriptions SET filter = '$.a ==' WHERE endpoint_id = $1",
            &[&id],
        )
        .await
        .expect_err("the CHECK refuses it");
    assert!(err.as_db_error().is_some(), "{err:?}");
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.subscriptions WHERE filter IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_endpoints_own_retry_schedule_and_max_age_replace_the_global_ones() {
    let db = fresh_db().await;
    let c = db.client().await;
    let failing = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    let ep = add_filtered(&c, &failing.url(), None).await.unwrap();
    // The global schedule starts at 5s and the global max age is a day: only the endpoint's
    // own policy can make the delivery retry fast and die within seconds.
    c.execute(
        "UPDATE outbox.endpoints SET retry_schedule = '100ms,300ms', max_age = '1500ms'
          WHERE id = $1",
        &[&ep],
    )
    .await
    .unwrap();
    let bad = c
        .execute(
            "UPDATE outbox.endpoints SET retry_schedule = '0s' WHERE id = $1",
            &[&ep],
        )
        .await;
    assert!(bad.is_err(), "the column's CHECK refuses a zero delay");
    let engine = start(&db, &["--circuit-failures", "1000"]).await;
    Event::new("doomed")
        .payload(json!({"x": 1}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(15)).await;

    let rows = c
        .query(
            "SELECT started_at, error_message FROM outbox.attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 4, "attempts: {}", rows.len());
    let started: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.get(0)).collect();
    let gap = |i: usize| (started[i] - started[i - 1]).num_milliseconds();
    assert!(
        (90..1000).contains(&gap(1)),
        "first retry after ~100ms: {}",
        gap(1)
    );
    assert!((290..1500).contains(&gap(2)), "then ~300ms: {}", gap(2));
    let last: String = rows.last().map(|r| r.get(1)).unwrap_or_default();
    assert!(last.contains("max age"), "{last}");
    engine.stop().await;
}

/// An event that relays an inbound request has no payload: its filters see the request body
/// when it is JSON (the JSON null otherwise, so a body filter is false, not an error) and the
/// request's headers as `$headers."x-inbound-<name>"`. A real request to the listener.
#[tokio::test]
async fn filters_on_inbound_events_see_a_json_body_and_the_request_headers() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.execute("SELECT outbox.add_source('raw', 'none')", &[])
        .await
        .unwrap();
    let big = Receiver::ok(TEST_SECRET).await;
    let eu = Receiver::ok(TEST_SECRET).await;
    for (rx, filter) in [
        (&big, "$.amount > 1000"),
        (&eu, r#"$headers."x-inbound-x-region" == "eu""#),
    ] {
        c.execute(
            "SELECT outbox.add_endpoint($1, '{inbound.*}', secret => $2, filter => $3)",
            &[&rx.url(), &TEST_SECRET, &filter],
        )
        .await
        .unwrap();
    }
    let engine = start(&db, &["--inbound-listen", "127.0.0.1:0"]).await;
    let inbound = engine.inbound_addr.expect("the inbound listener is on");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let cases: [(&str, Option<&str>, &[u8]); 4] = [
        (
            "application/json",
            Some("eu"),
            br#"{"e": "big", "amount": 1500}"#,
        ),
        (
            "application/vnd.shop+json; charset=utf-8",
            None,
            br#"{"e": "small", "amount": 5}"#,
        ),
        ("text/plain", Some("eu"), b"amount=5000"),
        ("application/json", Some("us"), b"{not json, amount: 5000"),
    ];
    for (ct, region, body) in cases {
        let mut rb = http
            .post(format!("http://{inbound}/in/raw"))
            .header("content-type", ct)
            .body(body.to_vec());
        if let Some(region) = region {
            rb = rb.header("X-Region", region);
        }
        let status = rb.send().await.expect("request").status();
        assert!(status.is_success(), "{ct}: {status}");
    }
    wait_all_finished(&c, Duration::from_secs(15)).await;
    let bodies = |rx: &Receiver| -> Vec<String> {
        let mut v: Vec<String> = rx
            .requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(bodies(&big), [r#"{"e": "big", "amount": 1500}"#]);
    assert_eq!(
        bodies(&eu),
        ["amount=5000", r#"{"e": "big", "amount": 1500}"#]
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.filter_errors").await,
        0
    );
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL OR payload IS NOT NULL"
        )
        .await,
        0
    );
    engine.stop().await;
}

/// The event-type catalog (V14 extends `outbox.event_types`): registered in SQL and over
/// `/v1/event-types`, listed with the types seen but not registered, with counts.
#[tokio::test]
async fn the_event_type_catalog_is_kept_in_sql_and_rest_and_lists_unregistered_types_with_counts() {
    use crate::console_support::{Api, start, wait_settled};
    use reqwest::StatusCode;
    let db = fresh_db().await;
    let c = db.client().await;
    let engine = start(&db, &[]).await;
    let api = Api::new(&engine);
    for ty in ["order.paid", "order.paid", "invoice.sent"] {
        Event::new(ty).tenant("acme").publish(&c).await;
    }
    wait_settled(&c).await;

    let order = json!({"description": "An order was paid.",
                       "schema": {"type": "object", "required": ["amount"]},
                       "example": {"amount": 1500, "currency": "EUR"}});
    let (status, body) = api.put("/v1/event-types/order.paid", order.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["registered"], true);
    assert_eq!(body["events"], 2);
    assert_eq!(body["example"]["amount"], 1500);
    let (status, _) = api.put("/v1/event-types/order.paid", order).await;
    assert_eq!(status, StatusCode::OK, "registering again updates");
    let registered: bool = c
        .query_one(
            "SELECT outbox.register_event_type('user.created', 'A user signed up.', deprecated => true)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(registered);
    // Refused, naming the field: a pattern, a schema that is not one.
    let (status, body) = api.put("/v1/event-types/order.*", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "name", "{body}");
    let (status, body) = api.put("/v1/event-types/x.y", json!({"schema": [1]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "schema", "{body}");

    let (_, list) = api.get("/v1/event-types").await;
    let rows: Vec<(String, bool, i64, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event_type"].as_str().unwrap().to_owned(),
                t["registered"].as_bool().unwrap(),
                t["events"].as_i64().unwrap(),
                t["first_seen"].is_null(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("invoice.sent".to_owned(), false, 1, false),
            ("order.paid".to_owned(), true, 2, false),
            ("user.created".to_owned(), true, 0, true),
        ]
    );
    let (_, unregistered) = api.get("/v1/event-types?registered=false").await;
    assert_eq!(unregistered["data"].as_array().unwrap().len(), 1);
    let (_, user) = api.get("/v1/event-types/user.created").await;
    assert_eq!(user["deprecated"], true);
    assert_eq!(user["description"], "A user signed up.");

    // Unregistered: the counts stay; a type never seen is gone.
    let (status, _) = api.delete("/v1/event-types/order.paid").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, order) = api.get("/v1/event-types/order.paid").await;
    assert_eq!(
        (order["registered"].as_bool(), order["events"].as_i64()),
        (Some(false), Some(2))
    );
    let (status, _) = api.delete("/v1/event-types/order.paid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.delete("/v1/event-types/user.created").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get("/v1/event-types/user.created").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    engine.stop().await;
}

/// `OUTBOXD_STRICT_EVENT_TYPES=true`: publishing an unregistered type still works, but its
/// deliveries are created dead (with the reason); registering the type and retrying the dead
/// delivers them.
#[tokio::test]
async fn with_strict_event_types_unregistered_types_get_dead_deliveries_until_registered_and_retried()
 {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_filtered(&c, &rx.url(), None).await.unwrap();
    c.execute("SELECT outbox.register_event_type('order.paid')", &[])
        .await
        .unwrap();
    let engine = start(&db, &["--strict-event-types", "true"]).await;
    for (ty, e) in [("order.paid", "known"), ("order.shipped", "unknown")] {
        Event::new(ty)
            .key("order-1")
            .payload(json!({"e": e}))
            .publish(&c)
            .await;
    }
    wait_all_finished(&c, Duration::from_secs(15)).await;
    assert_eq!(names(&rx), ["known"]);
    let last_error: String = c
        .query_one(
            "SELECT d.last_error FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
              WHERE e.event_type = 'order.shipped' AND d.state = 'dead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(last_error.contains("not registered"), "{last_error}");

    c.execute("SELECT outbox.register_event_type('order.shipped')", &[])
        .await
        .unwrap();
    c.execute("SELECT outbox.retry_dead($1)", &[&ep])
        .await
        .unwrap();
    assert!(rx.wait_for_count(2, Duration::from_secs(15)).await);
    assert_eq!(names(&rx), ["known", "unknown"]);
    engine.stop().await;
}
