//! Hot lane hand-off (`src/record.rs`): the transaction that records a lane head's outcome
//! leases the lane's next delivery to the same replica, which sends it without a claim round.
//! Per-resource order and at-least-once must hold exactly as with claims.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use testkit::*;

use crate::OUTBOXD;
use crate::engine::{body_json, metrics_text, order_violations, start, wait_all_finished};
use crate::support::{add_endpoint, scalar_i64};

/// Publishes `n` events of resource `key` in one transaction, `seq` 0..n in outbox order:
/// routed together, so all but the first wait in their lane (held).
async fn publish_lane(c: &tokio_postgres::Client, key: &str, n: i32) {
    c.execute(
        "INSERT INTO outbox.events (event_type, resource_key, payload)
         SELECT 'res.changed', $1, jsonb_build_object('r', $1::text, 'seq', g)
           FROM generate_series(0, $2 - 1) g ORDER BY g",
        &[&key, &n],
    )
    .await
    .expect("publish");
}

/// The value of a counter without labels on a `/metrics` page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not on the page:\n{page}"))
}

fn seq_of(r: &ReceivedRequest) -> i64 {
    body_json(r)["seq"].as_i64().expect("seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_lane_is_handed_off_and_keeps_its_order_under_failures() {
    let db = fresh_db().await;
    let c = db.client().await;
    // Every fourth event of the hot lane fails its first attempt.
    let failed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(move |r, _| {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let first = failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(r.id.clone());
            if v["r"] == "hot" && v["seq"].as_i64().unwrap_or(0) % 4 == 1 && first {
                Reply::status(503)
            } else {
                Reply::ok()
            }
        }),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(
        &db,
        &["--retry-schedule", "50ms", "--circuit-failures", "1000"],
    )
    .await;
    publish_lane(&c, "hot", 40).await;
    publish_lane(&c, "cold", 5).await;
    wait_all_finished(&c, Duration::from_secs(30)).await;

    let reqs = rx.requests();
    assert_eq!(order_violations(&reqs), 0, "per-resource order");
    let ok = rx.successes_by_id();
    assert_eq!(ok.len(), 45, "every event delivered");
    assert!(
        ok.values().all(|&n| n == 1),
        "no duplicates without a crash"
    );
    assert_eq!(
        reqs.iter().filter(|r| r.status() == Some(503)).count(),
        10,
        "the receiver failed the ten events it was told to"
    );
    // Each of the hot lane's 39 successors is promoted by its predecessor's success; here
    // nothing else limits the endpoint, so (nearly) all of them were handed off.
    let handed = counter(&metrics_text(&engine).await, "outboxd_lane_handoffs_total");
    assert!(handed >= 30.0, "only {handed} hand-offs");
    // Recorded like any claimed attempt: one attempt row per request, numbered by claim.
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.attempts").await,
        reqs.len() as i64
    );
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.deliveries
              WHERE state <> 'succeeded' OR attempt_count <> claim_count OR leased_by IS NOT NULL"
        )
        .await,
        0
    );
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_while_sending_a_handed_off_delivery_loses_nothing() {
    let db = fresh_db().await;
    let c = db.client().await;
    // The hot lane's sixth event hangs: it is sent by hand-off (its predecessor's success
    // leased it), and the sidecar is killed while the request is in flight.
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(|r, _| {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if v["seq"] == 5 {
                Reply::ok().with_delay(Duration::from_secs(60))
            } else {
                Reply::ok()
            }
        }),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let envs = [
        ("OUTBOXD_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("OUTBOXD_POLL_INTERVAL", "50ms"),
        ("OUTBOXD_REQUEST_TIMEOUT", "3s"),
        ("OUTBOXD_LEASE", "5s"),
        ("OUTBOXD_REPLICA_ID", "a"),
    ];
    let mut a = Sidecar::run(OUTBOXD, &db.url, &envs);
    let listen = a
        .wait_started(Duration::from_secs(30))
        .await
        .expect("A starts");
    publish_lane(&c, "hot", 20).await;
    assert!(
        rx.wait_for(Duration::from_secs(15), |reqs| reqs
            .iter()
            .any(|r| seq_of(r) == 5))
            .await,
        "A reached the sixth event:\n{}",
        a.log()
    );
    let page = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .expect("A's /metrics")
        .text()
        .await
        .expect("page");
    assert!(
        counter(&page, "outboxd_lane_handoffs_total") >= 1.0,
        "A handed off its lane's successors"
    );
    // The sixth event is leased to A; the rest of the lane waits behind it.
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering' AND leased_by = 'a'"
        )
        .await,
        1
    );
    a.kill9();
    rx.set_behaviour(always(Reply::ok()));
    let b_envs: Vec<(&str, &str)> = envs
        .iter()
        .map(|&(k, v)| {
            if k == "OUTBOXD_REPLICA_ID" {
                (k, "b")
            } else {
                (k, v)
            }
        })
        .collect();
    let _b = Sidecar::run(OUTBOXD, &db.url, &b_envs);
    // B rescues A's lease once it expires and finishes the lane, in order.
    wait_all_finished(&c, Duration::from_secs(30)).await;
    let reqs = rx.requests();
    assert_eq!(order_violations(&reqs), 0, "per-resource order");
    let ok = rx.successes_by_id();
    assert_eq!(ok.len(), 20, "every event delivered");
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for r in &reqs {
        *seen.entry(seq_of(r)).or_default() += 1;
    }
    assert_eq!(
        seen[&5], 2,
        "the killed request was sent again (same webhook-id)"
    );
    assert!(
        (0..20).filter(|s| *s != 5).all(|s| seen[&s] == 1),
        "{seen:?}"
    );
    // A's hand-off was an ordinary lease (claim 1, never recorded); B's claim after the
    // rescue is the one attempt on record.
    let row = c
        .query_one(
            "SELECT d.claim_count, d.attempt_count,
                    (SELECT string_agg(a.replica || ':' || a.attempt, ',' ORDER BY a.attempt)
                       FROM outbox.attempts a WHERE a.delivery_id = d.id)
               FROM outbox.deliveries d JOIN outbox.events e ON e.id = d.event_pk
              WHERE e.payload->>'seq' = '5'",
            &[],
        )
        .await
        .expect("query");
    let (claims, attempts, by): (i32, i32, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((claims, attempts, by.as_str()), (2, 1, "b:2"));
}
