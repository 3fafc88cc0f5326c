//! The delivery engine's promises (SPEC §3–§4, §7), on a real PostgreSQL and real HTTP over
//! loopback. Each test has its own fresh database.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use testkit::*;

use crate::OUTBOXD;
use crate::support::{Event, add_endpoint, scalar_i64};
use outboxd::{Config, Engine};
use serde_json::{Value, json};

/// Engine configuration for these tests: loopback receivers allowed (see `common::engine_config`).
pub(crate) fn config(db: &TestDb, extra: &[&str]) -> Config {
    let mut args = vec!["--allow-networks", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    engine_config(db, &args)
}

pub(crate) async fn start(db: &TestDb, extra: &[&str]) -> Engine {
    Engine::start(config(db, extra))
        .await
        .expect("engine starts")
}

/// Polls until every event is routed and every delivery finished (succeeded or dead).
pub(crate) async fn wait_all_finished(c: &tokio_postgres::Client, deadline: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < deadline {
        if scalar_i64(
            c,
            "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL)
                  + (SELECT count(*) FROM outbox.deliveries WHERE state IN ('pending', 'delivering'))",
        )
        .await
            == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dump: Vec<String> = c
        .query(
            "SELECT format('%s ep=%s lane=%s state=%s held=%s attempts=%s next=%s err=%s', d.id, d.endpoint_id,
                           left(d.lane_key, 20), d.state, d.held, d.attempt_count, d.next_attempt_at, d.last_error)
               FROM outbox.deliveries d WHERE state IN ('pending', 'delivering') ORDER BY id LIMIT 20",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    panic!(
        "deliveries not finished after {deadline:?}:\n{}",
        dump.join("\n")
    );
}

/// The engine's `/metrics` page.
pub(crate) async fn metrics_text(engine: &Engine) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/metrics", engine.listen_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) fn body_json(r: &ReceivedRequest) -> Value {
    serde_json::from_slice(&r.body).expect("JSON body")
}

/// Per-resource order check over what a receiver saw: a request for (resource, seq) must
/// only arrive after every smaller seq of that resource was answered 2xx. Returns the
/// number of violations.
pub(crate) fn order_violations(requests: &[ReceivedRequest]) -> usize {
    let mut done: HashMap<String, std::collections::BTreeSet<i64>> = HashMap::new();
    let mut violations = 0;
    for r in requests {
        let v = body_json(r);
        let (res, seq) = (v["r"].to_string(), v["seq"].as_i64().expect("seq"));
        let set = done.entry(res).or_default();
        if (0..seq).any(|s| !set.contains(&s)) {
            violations += 1;
        }
        if r.is_2xx() {
            set.insert(seq);
        }
    }
    violations
}

#[tokio::test]
async fn signed_event_is_delivered_and_verifies_with_an_independent_library() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["order.*"], Some("acme")).await;
    let engine = start(&db, &[]).await;

    let id = Event::new("order.paid")
        .key("order:42")
        .tenant("acme")
        .payload(json!({"id": 42, "status": "paid"}))
        .publish(&c)
        .await;
    assert!(
        rx.wait_for_count(1, Duration::from_secs(10)).await,
        "no delivery"
    );
    let r = &rx.requests()[0];
    assert!(r.signature_ok, "standardwebhooks rejected the signature");
    assert_eq!(r.id, id);
    assert_eq!(&r.body[..], br#"{"id": 42, "status": "paid"}"#);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(
        r.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("outboxd/")
    );
    assert!((r.timestamp - chrono::Utc::now().timestamp()).abs() < 10);

    wait_all_finished(&c, Duration::from_secs(10)).await;
    let row = c
        .query_one(
            "SELECT a.status_code, a.error_kind, a.attempt, d.state, a.event_id
               FROM outbox.attempts a JOIN outbox.deliveries d ON d.id = a.delivery_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i32>>(0), Some(200));
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, i32>(2), 1);
    assert_eq!(row.get::<_, String>(3), "succeeded");
    assert_eq!(row.get::<_, String>(4), id);
    engine.stop().await;
}

#[tokio::test]
async fn rolled_back_transaction_sends_nothing() {
    let db = fresh_db().await;
    let mut c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;

    let tx = c.transaction().await.unwrap();
    tx.execute(
        "SELECT outbox.publish('order.paid', '{\"rolled\": \"back\"}')",
        &[],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    Event::new("order.paid")
        .payload(json!({"committed": true}))
        .publish(&c)
        .await;

    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
    wait_all_finished(&c, Duration::from_secs(10)).await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(&reqs[0].body[..], br#"{"committed": true}"#);
    engine.stop().await;
}

#[tokio::test]
async fn late_committing_transaction_is_still_delivered() {
    let db = fresh_db().await;
    let mut early = db.client().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;

    // Takes the smaller id first, commits last.
    let tx = early.transaction().await.unwrap();
    let slow_id: String = tx
        .query_one("SELECT outbox.publish('slow.one', '{\"n\": 1}')", &[])
        .await
        .unwrap()
        .get(0);
    let fast_id = Event::new("fast.one")
        .payload(json!({"n": 2}))
        .publish(&c)
        .await;
    assert!(
        rx.wait_for(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.id == fast_id))
            .await
    );
    tx.commit().await.unwrap();
    assert!(
        rx.wait_for(Duration::from_secs(10), |r| r
            .iter()
            .any(|r| r.id == slow_id))
            .await,
        "the late commit was skipped"
    );
    let ids: Vec<i64> = c
        .query("SELECT id FROM outbox.events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 2);
    engine.stop().await;
}

/// SPEC §4's interleaving: T2 takes an xid, M takes a larger one and stays open, T1 (larger
/// xid still) locks resource X, publishes event 1 and commits; T2 then locks X, publishes event
/// 2 and commits. Event 1 must arrive before event 2 although M is still open.
#[tokio::test]
async fn snapshot_horizon_interleaving_keeps_resource_order() {
    let db = fresh_db().await;
    let setup = db.client().await;
    setup
        .batch_execute(
            "CREATE TABLE resources (id text PRIMARY KEY, version int NOT NULL);
             CREATE TABLE scratch (n int);
             INSERT INTO resources VALUES ('X', 0);",
        )
        .await
        .unwrap();
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&setup, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;

    let (mut t1c, mut t2c, mut mc) = (db.client().await, db.client().await, db.client().await);
    let t2 = t2c.transaction().await.unwrap();
    t2.execute("INSERT INTO scratch VALUES (2)", &[])
        .await
        .unwrap(); // xid b
    let m = mc.transaction().await.unwrap();
    m.execute("INSERT INTO scratch VALUES (0)", &[])
        .await
        .unwrap(); // xid m > b, stays open
    let t1 = t1c.transaction().await.unwrap();
    t1.execute(
        "UPDATE resources SET version = version + 1 WHERE id = 'X'",
        &[],
    )
    .await
    .unwrap(); // xid c > m
    t1.execute(
        "SELECT outbox.publish('res.changed', '{\"r\": \"X\", \"seq\": 0}', resource_key => 'X')",
        &[],
    )
    .await
    .unwrap();
    t1.commit().await.unwrap();
    t2.execute(
        "UPDATE resources SET version = version + 1 WHERE id = 'X'",
        &[],
    )
    .await
    .unwrap();
    t2.execute(
        "SELECT outbox.publish('res.changed', '{\"r\": \"X\", \"seq\": 1}', resource_key => 'X')",
        &[],
    )
    .await
    .unwrap();
    t2.commit().await.unwrap();

    assert!(
        rx.wait_for_count(2, Duration::from_secs(10)).await,
        "both events arrive while M is open"
    );
    let seqs: Vec<i64> = rx
        .requests()
        .iter()
        .map(|r| body_json(r)["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1], "event 1 must precede event 2");
    m.rollback().await.unwrap();
    engine.stop().await;
}

#[tokio::test]
async fn failing_resource_does_not_block_other_resources_and_order_holds_under_failures() {
    let db = fresh_db().await;
    let c = db.client().await;
    // Resource A's first attempt fails a few times; B is healthy.
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(|r, _| {
            let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if v["r"] == "A" && v["seq"] == 0 {
                Reply::status(500)
            } else {
                Reply::ok()
            }
        }),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(
        &db,
        &["--retry-schedule", "300ms", "--circuit-failures", "1000"],
    )
    .await;
    for seq in 0..3 {
        for r in ["A", "B"] {
            Event::new("res.changed")
                .key(r)
                .payload(json!({"r": r, "seq": seq}))
                .publish(&c)
                .await;
        }
    }
    // B completes while A is stuck on its first event.
    assert!(
        rx.wait_for(Duration::from_secs(10), |reqs| {
            reqs.iter()
                .filter(|r| r.status() == Some(200) && body_json(r)["r"] == "B")
                .count()
                == 3
        })
        .await
    );
    assert!(
        rx.requests()
            .iter()
            .all(|r| !(body_json(r)["r"] == "A" && body_json(r)["seq"] != 0)),
        "A's later events must wait for A's first"
    );
    // Then A recovers and everything arrives in order.
    rx.set_behaviour(always(Reply::ok()));
    wait_all_finished(&c, Duration::from_secs(15)).await;
    assert_eq!(order_violations(&rx.requests()), 0);
    assert_eq!(rx.successes_by_id().len(), 6);
    engine.stop().await;
}

/// The issue's headline test: 30 % random failures, 200 resources, 3 outboxd processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_deliver_everything_in_order_despite_random_failures() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(|r, _| {
            // Deterministic "random": a hash of id and arrival, about 30 % failures.
            let h =
                r.id.bytes()
                    .fold(r.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15), |h, b| {
                        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
                    });
            if h % 10 < 3 {
                Reply::status(503)
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
        ("OUTBOXD_RETRY_SCHEDULE", "20ms,50ms,100ms"),
        ("OUTBOXD_CIRCUIT_FAILURES", "100000"),
        ("OUTBOXD_REQUEST_TIMEOUT", "5s"),
    ];
    let mut sidecars: Vec<Sidecar> = (0..3)
        .map(|_| Sidecar::run(OUTBOXD, &db.url, &envs))
        .collect();

    const RESOURCES: usize = 200;
    const PER_RESOURCE: usize = 5;
    let mut producers = Vec::new();
    for p in 0..4 {
        let db = db.clone();
        producers.push(tokio::spawn(async move {
            let mut c = db.client().await;
            for seq in 0..PER_RESOURCE {
                for r in (p..RESOURCES).step_by(4) {
                    let tx = c.transaction().await.unwrap();
                    tx.execute(
                        "SELECT outbox.publish('res.changed', $1::text::jsonb, resource_key => $2)",
                        &[
                            &format!(r#"{{"r": {r}, "seq": {seq}}}"#),
                            &format!("res:{r}"),
                        ],
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    wait_all_finished(&c, Duration::from_secs(120)).await;
    for s in &mut sidecars {
        assert!(s.is_running(), "a sidecar died:\n{}", s.log());
    }

    let reqs = rx.requests();
    let ok = rx.successes_by_id();
    assert_eq!(ok.len(), RESOURCES * PER_RESOURCE, "every event delivered");
    assert_eq!(order_violations(&reqs), 0, "per-resource order");
    let failures = reqs.iter().filter(|r| r.status() == Some(503)).count();
    assert!(
        failures > reqs.len() / 5,
        "the receiver really failed ~30 %: {failures}/{}",
        reqs.len()
    );
    assert!(reqs.iter().all(|r| r.signature_ok));
    let dead = scalar_i64(
        &c,
        "SELECT count(*) FROM outbox.deliveries WHERE state <> 'succeeded'",
    )
    .await;
    assert_eq!(dead, 0);
    // Duplicates (more than one 2xx for one webhook-id) can only come from crashes; there were
    // none, so there must be none. Every request carries an event's own webhook-id by
    // construction of successes_by_id.
    let dups: usize = ok.values().map(|n| n - 1).sum();
    assert_eq!(dups, 0);
    // All three replicas took part.
    let replicas = scalar_i64(&c, "SELECT count(DISTINCT replica) FROM outbox.attempts").await;
    assert!(replicas >= 2, "only {replicas} replica(s) delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_sidecars_leased_work_is_redelivered_by_another_instance() {
    let db = fresh_db().await;
    let c = db.client().await;
    // Hangs: the first sidecar is killed while its requests are in flight.
    let rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_secs(60))),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let envs = [
        ("OUTBOXD_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("OUTBOXD_POLL_INTERVAL", "50ms"),
        ("OUTBOXD_REQUEST_TIMEOUT", "1s"),
        ("OUTBOXD_LEASE", "2s"),
    ];
    let mut a = Sidecar::run(OUTBOXD, &db.url, &envs);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(Event::new("job").payload(json!({"i": i})).publish(&c).await);
    }
    assert!(
        rx.wait_for_count(5, Duration::from_secs(15)).await,
        "A started delivering:\n{}",
        a.log()
    );
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering'"
        )
        .await,
        5
    );
    a.kill9();
    rx.set_behaviour(always(Reply::ok()));
    // B finds A's deliveries leased; it takes them over once the 2 s leases expire.
    let _b = Sidecar::run(OUTBOXD, &db.url, &envs);
    wait_all_finished(&c, Duration::from_secs(20)).await;
    let ok = rx.successes_by_id();
    for id in &ids {
        assert_eq!(
            ok.get(id),
            Some(&1),
            "{id} redelivered once with the same webhook-id"
        );
    }
    // Each event reached the receiver twice with the same webhook-id: once from A, once from B.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in rx.requests() {
        *seen.entry(r.id).or_default() += 1;
    }
    assert!(ids.iter().all(|id| seen[id] == 2));
    let rescued: String = c
        .query_one(
            "SELECT string_agg(DISTINCT coalesce(last_error, ''), ';') FROM outbox.deliveries",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        rescued.is_empty() || rescued.contains("lease expired") || rescued == ";",
        "{rescued}"
    );
}

#[tokio::test]
async fn retries_follow_the_schedule_and_the_delivery_dies_at_max_age() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(
        &db,
        &[
            "--retry-schedule",
            "100ms,300ms",
            "--max-age",
            "1500ms",
            "--circuit-failures",
            "1000",
        ],
    )
    .await;
    Event::new("doomed")
        .key("k")
        .payload(json!({"x": 1}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(15)).await;

    let state: String = c
        .query_one("SELECT state FROM outbox.deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "dead");
    let rows = c
        .query(
            "SELECT attempt, started_at, next_attempt_at, error_kind, status_code, error_message
               FROM outbox.attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 4, "attempts: {}", rows.len());
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.get::<_, i32>(0), i as i32 + 1);
        assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("status"));
        assert_eq!(r.get::<_, Option<i32>>(4), Some(500));
    }
    let started: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|r| r.get(1)).collect();
    let gap = |i: usize| (started[i] - started[i - 1]).num_milliseconds();
    assert!(
        (90..1000).contains(&gap(1)),
        "first retry after ~100ms, got {}",
        gap(1)
    );
    assert!(gap(2) >= 290, "second retry after ~300ms, got {}", gap(2));
    // Every attempt but the last says when the next one is; the last says why it is dead.
    let last = rows.last().unwrap();
    assert!(
        last.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2)
            .is_none()
    );
    assert!(
        last.get::<_, String>(5).contains("max age"),
        "{}",
        last.get::<_, String>(5)
    );
    assert!(rows[..rows.len() - 1].iter().all(|r| {
        r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2)
            .is_some()
    }));
    engine.stop().await;
}

#[tokio::test]
async fn retry_after_from_a_429_is_honoured() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(|_, n| {
            if n == 0 {
                Reply::status(429).with_header("retry-after", "1")
            } else {
                Reply::ok()
            }
        }),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &["--retry-schedule", "10ms"]).await;
    Event::new("x").publish(&c).await;
    assert!(rx.wait_for_count(2, Duration::from_secs(10)).await);
    let reqs = rx.requests();
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After"
    );
    wait_all_finished(&c, Duration::from_secs(5)).await;
    engine.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_and_stops_deliveries() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(410))).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;
    Event::new("x").payload(json!({"n": 1})).publish(&c).await;
    wait_until(Duration::from_secs(10), "endpoint disabled", || async {
        !c.query_one("SELECT enabled FROM outbox.endpoints WHERE id = $1", &[&ep])
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await;
    let reason: String = c
        .query_one(
            "SELECT disabled_reason FROM outbox.endpoints WHERE id = $1",
            &[&ep],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("410"), "{reason}");
    Event::new("x").payload(json!({"n": 2})).publish(&c).await;
    // Give the engine time to (wrongly) send more; nothing more may arrive.
    assert!(!rx.wait_for_count(2, Duration::from_millis(800)).await);
    assert_eq!(rx.count(), 1);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_endpoint_does_not_slow_a_healthy_one() {
    let db = fresh_db().await;
    let c = db.client().await;
    let healthy = Receiver::ok(TEST_SECRET).await;
    let slow = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_secs(60))),
    )
    .await;
    add_endpoint(&c, &healthy.url(), &["*"], None).await;
    let engine = start(
        &db,
        // No request to the slow endpoint times out while the test runs (20 s), so every one
        // it received is still in flight: the receiver's count is outboxd's in-flight count.
        &[
            "--request-timeout",
            "20s",
            "--circuit-failures",
            "1000",
            "--shutdown-grace",
            "1s",
        ],
    )
    .await;
    const N: i64 = 400;
    let publish_n = |from: i64| {
        let c = &c;
        async move {
            c.execute(
                "INSERT INTO outbox.events (event_type, payload)
                 SELECT 'tick', jsonb_build_object('n', g) FROM generate_series($1::bigint, $1 + $2 - 1) g",
                &[&from, &N],
            )
            .await
            .unwrap();
        }
    };
    let t0 = Instant::now();
    publish_n(0).await;
    assert!(
        healthy
            .wait_for_count(N as usize, Duration::from_secs(30))
            .await
    );
    let alone = t0.elapsed();

    let slow_ep = add_endpoint(&c, &slow.url(), &["*"], None).await;
    c.execute(
        "UPDATE outbox.endpoints SET max_in_flight = 4 WHERE id = $1",
        &[&slow_ep],
    )
    .await
    .unwrap();
    // Time only once the replica's catalog has the new endpoint (its series are in /metrics).
    let label = format!("endpoint_id=\"{slow_ep}\"");
    crate::metrics::scrape_until(
        engine.listen_addr,
        Duration::from_secs(10),
        "the slow endpoint in the catalog",
        |m| m.keys().any(|k| k.contains(&label)),
    )
    .await;
    let t1 = Instant::now();
    publish_n(N).await;
    assert!(
        healthy
            .wait_for_count(2 * N as usize, Duration::from_secs(15))
            .await,
        "healthy endpoint got {} of {} next to a hanging one",
        healthy.count(),
        2 * N
    );
    let with_slow = t1.elapsed();
    let requests = slow.requests();
    assert!(!requests.is_empty(), "the slow endpoint was never called");
    assert!(
        requests.iter().all(|r| !r.completed()),
        "a slow request was answered during the test (it hangs 60 s)"
    );
    assert!(
        requests.len() <= 4,
        "slow endpoint had {} requests in flight, limit 4",
        requests.len()
    );
    // Generous: the point is "not stuck behind the hanging one", and this machine is
    // shared (runs vary ±50 % under load).
    assert!(
        with_slow <= alone * 2 + Duration::from_millis(500),
        "healthy endpoint: {alone:?} alone, {with_slow:?} next to a hanging endpoint"
    );
    engine.stop().await;
}

#[tokio::test]
async fn tenants_are_isolated_and_wildcards_filter_event_types() {
    let db = fresh_db().await;
    let c = db.client().await;
    let acme_orders = Receiver::ok(TEST_SECRET).await;
    let globex_all = Receiver::ok(TEST_SECRET).await;
    let internal = Receiver::ok(TEST_SECRET).await;
    let auditor = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &acme_orders.url(), &["order.*"], Some("acme")).await;
    add_endpoint(&c, &globex_all.url(), &["*"], Some("globex")).await;
    add_endpoint(&c, &internal.url(), &["*"], None).await;
    let aud = add_endpoint(&c, &auditor.url(), &["invoice.paid", "*.refunded"], None).await;
    c.execute(
        "UPDATE outbox.endpoints SET all_tenants = true WHERE id = $1",
        &[&aud],
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;

    for (event_type, tenant, e) in [
        ("order.paid", "acme", "acme-order"),
        ("invoice.paid", "acme", "acme-invoice"),
        ("order.paid", "globex", "globex-order"),
        ("order.refunded", "globex", "globex-refund"),
    ] {
        Event::new(event_type)
            .tenant(tenant)
            .payload(json!({"e": e}))
            .publish(&c)
            .await;
    }
    Event::new("system.tick")
        .payload(json!({"e": "system"}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(10)).await;

    let names = |rx: &Receiver| {
        let mut v: Vec<String> = rx
            .requests()
            .iter()
            .map(|r| body_json(r)["e"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&acme_orders), ["acme-order"]);
    assert_eq!(names(&globex_all), ["globex-order", "globex-refund"]);
    assert_eq!(names(&internal), ["system"]);
    assert_eq!(names(&auditor), ["acme-invoice", "globex-refund"]);
    engine.stop().await;
}

#[tokio::test]
async fn ssrf_attempt_is_recorded_as_a_blocked_address() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    add_endpoint(&c, "http://169.254.169.254/latest/meta-data/", &["*"], None).await;
    add_endpoint(
        &c,
        &format!("http://localhost:{}/hook", rx.addr().port()),
        &["*"],
        None,
    )
    .await;
    // No allowlist: loopback is refused like any private address.
    let engine = start(&db, &["--allow-networks", "", "--retry-schedule", "1h"]).await;
    Event::new("x").publish(&c).await;
    wait_until(
        Duration::from_secs(10),
        "three attempts recorded",
        || async { scalar_i64(&c, "SELECT count(*) FROM outbox.attempts").await == 3 },
    )
    .await;
    let kinds: Vec<(Option<String>, String)> = c
        .query(
            "SELECT error_kind, error_message FROM outbox.attempts ORDER BY endpoint_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (kind, msg) in &kinds {
        assert_eq!(kind.as_deref(), Some("blocked_address"), "{msg}");
    }
    assert_eq!(rx.count(), 0, "nothing reached the private address");
    engine.stop().await;
}

#[tokio::test]
async fn the_same_event_id_published_twice_is_delivered_once() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;
    for _ in 0..2 {
        c.execute(
            "SELECT outbox.publish('x', '{}', event_id => 'evt_fixed')",
            &[],
        )
        .await
        .unwrap();
    }
    wait_all_finished(&c, Duration::from_secs(10)).await;
    // And again later, in another routing batch.
    c.execute(
        "SELECT outbox.publish('x', '{}', event_id => 'evt_fixed')",
        &[],
    )
    .await
    .unwrap();
    wait_all_finished(&c, Duration::from_secs(10)).await;
    assert_eq!(rx.count(), 1);
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.deliveries").await,
        1
    );
    engine.stop().await;
}

#[tokio::test]
async fn bad_rows_fail_clearly_and_block_nothing() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;

    // Rejected at publish time, with a clear error for the application.
    let err = c
        .execute(
            "INSERT INTO outbox.events (event_type, payload) VALUES ('', '{}')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("events_event_type_valid")
            || format!("{err:?}").contains("events_event_type_valid")
    );
    let err = c
        .execute(
            "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('x', '{}', '[1]')",
            &[],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("events_headers_object"));

    // Accepted but undeliverable: dead at once with a recorded reason.
    let bad = Event::new("x")
        .headers(json!({"x-bad": "line\nbreak"}))
        .publish(&c)
        .await;
    // A huge resource key, a 10 MB payload, and a normal event: all delivered.
    let long_key = "k".repeat(100_000);
    let k = Event::new("x")
        .key(&long_key)
        .payload(json!({"long": "key"}))
        .publish(&c)
        .await;
    let big_payload = format!(r#"{{"blob": "{}"}}"#, "a".repeat(10 * 1024 * 1024));
    let big = Event::new("x")
        .key("big")
        .payload_text(big_payload.clone())
        .publish(&c)
        .await;
    let normal = Event::new("x")
        .payload(json!({"normal": true}))
        .publish(&c)
        .await;
    wait_all_finished(&c, Duration::from_secs(30)).await;

    let ok = rx.successes_by_id();
    assert!(ok.contains_key(&k) && ok.contains_key(&big) && ok.contains_key(&normal));
    assert!(!ok.contains_key(&bad));
    let big_req = rx.requests().into_iter().find(|r| r.id == big).unwrap();
    assert_eq!(big_req.body.len(), big_payload.len());
    assert!(big_req.signature_ok);
    let row = c
        .query_one(
            "SELECT d.state, a.error_kind, a.error_message FROM outbox.deliveries d
               JOIN outbox.events e ON e.id = d.event_pk JOIN outbox.attempts a ON a.delivery_id = d.id
              WHERE e.event_id = $1",
            &[&bad],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "dead");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("invalid_event")
    );
    assert!(
        row.get::<_, String>(2).contains("x-bad"),
        "{}",
        row.get::<_, String>(2)
    );
    engine.stop().await;
}

#[tokio::test]
async fn failing_endpoint_is_probed_not_hammered() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(
        &db,
        &[
            "--retry-schedule",
            "10ms",
            "--circuit-failures",
            "3",
            "--circuit-cooldown",
            "1s",
        ],
    )
    .await;
    c.execute(
        "INSERT INTO outbox.events (event_type, payload) SELECT 'x', jsonb_build_object('n', g) FROM generate_series(1, 50) g",
        &[],
    )
    .await
    .unwrap();
    assert!(rx.wait_for_count(3, Duration::from_secs(10)).await);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Without a breaker: 50 deliveries retrying every 10 ms = thousands of requests.
    // With it: the first failures (up to max_in_flight in flight at once), then ~1 probe per cooldown.
    let n = rx.count();
    assert!(
        n <= 16 + 3 + 4,
        "{n} requests in {:?}: the endpoint was hammered",
        t0.elapsed()
    );
    let state = metrics_text(&engine).await;
    assert!(state.contains("outboxd_endpoint_circuit_state"), "{state}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_millis(700))),
    )
    .await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let mut s = Sidecar::run(
        OUTBOXD,
        &db.url,
        &[
            ("OUTBOXD_LISTEN", "127.0.0.1:0"),
            ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
            ("OUTBOXD_POLL_INTERVAL", "50ms"),
        ],
    );
    Event::new("x").publish(&c).await;
    assert!(
        rx.wait_for_count(1, Duration::from_secs(10)).await,
        "{}",
        s.log()
    );
    s.sigterm();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", s.log());
    // The in-flight request was finished and recorded, not abandoned.
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM outbox.deliveries WHERE state = 'succeeded'"
        )
        .await,
        1,
        "{}",
        s.log()
    );
}

#[tokio::test]
async fn secret_rotation_signs_with_old_and_new_secrets() {
    let db = fresh_db().await;
    let c = db.client().await;
    let old_rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_endpoint(&c, &old_rx.url(), &["*"], None).await;
    let new_secret: String = c
        .query_one("SELECT outbox.rotate_secret($1)", &[&ep])
        .await
        .unwrap()
        .get(0);
    let engine = start(&db, &[]).await;
    Event::new("x").publish(&c).await;
    assert!(old_rx.wait_for_count(1, Duration::from_secs(10)).await);
    let r = &old_rx.requests()[0];
    assert!(
        r.signature_ok,
        "receivers still on the old secret keep verifying"
    );
    let sigs = r.headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .count();
    assert_eq!(sigs, 2);
    let verifier = standardwebhooks::Webhook::new(&new_secret).unwrap();
    verifier
        .verify(&r.body, &r.headers)
        .expect("and receivers on the new secret too");
    engine.stop().await;
    let _ = BTreeMap::<i32, i32>::new();
}

#[tokio::test]
async fn every_cookbook_query_runs_against_the_migrated_schema() {
    let db = fresh_db().await;
    let mut c = db.client().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/cookbook");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for f in files {
        let sql = std::fs::read_to_string(&f).unwrap();
        let tx = c.transaction().await.unwrap();
        tx.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn dead_deliveries_can_be_retried_and_rejoin_their_lane() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(
        &db,
        &[
            "--retry-schedule",
            "50ms",
            "--max-age",
            "300ms",
            "--circuit-failures",
            "1000",
        ],
    )
    .await;
    for seq in 0..3 {
        Event::new("x")
            .key("R")
            .payload(json!({"r": "R", "seq": seq}))
            .publish(&c)
            .await;
    }
    wait_all_finished(&c, Duration::from_secs(15)).await;
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.dead_deliveries").await,
        3,
        "each dies in turn, in order"
    );
    // n+1 is only sent once n is dead: the seqs the receiver saw never go back.
    let seen: Vec<i64> = rx
        .requests()
        .iter()
        .map(|r| body_json(r)["seq"].as_i64().unwrap())
        .collect();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    rx.clear();
    rx.set_behaviour(always(Reply::ok()));
    let revived: i64 = c
        .query_one("SELECT outbox.retry_dead($1)", &[&ep])
        .await
        .unwrap()
        .get(0);
    assert_eq!(revived, 3);
    wait_all_finished(&c, Duration::from_secs(15)).await;
    let seqs: Vec<i64> = rx
        .requests()
        .iter()
        .map(|r| body_json(r)["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1, 2], "retried in lane order, one at a time");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_burst_does_not_starve_another_tenant() {
    let db = fresh_db().await;
    let c = db.client().await;
    let busy = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_millis(20))),
    )
    .await;
    let quiet = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &busy.url(), &["*"], Some("busy")).await;
    add_endpoint(&c, &quiet.url(), &["*"], Some("quiet")).await;
    // Global concurrency is the bottleneck: 8 requests for both endpoints together.
    let engine = start(&db, &["--concurrency", "8"]).await;
    c.execute(
        "INSERT INTO outbox.events (event_type, tenant_id, payload)
         SELECT 'burst', 'busy', jsonb_build_object('n', g) FROM generate_series(1, 600) g",
        &[],
    )
    .await
    .unwrap();
    assert!(busy.wait_for_count(50, Duration::from_secs(10)).await);
    let t0 = Instant::now();
    for i in 0..5 {
        Event::new("ping")
            .tenant("quiet")
            .payload(json!({"i": i}))
            .publish(&c)
            .await;
    }
    assert!(quiet.wait_for_count(5, Duration::from_secs(10)).await);
    let quiet_latency = t0.elapsed();
    let busy_left = scalar_i64(
        &c,
        "SELECT count(*) FROM outbox.deliveries WHERE state <> 'succeeded'",
    )
    .await;
    assert!(
        busy_left > 100,
        "the quiet tenant waited for the burst to drain ({quiet_latency:?}, {busy_left} left)"
    );
    assert!(quiet_latency < Duration::from_secs(1), "{quiet_latency:?}");
    engine.stop().await;
}

/// A tenant that publishes a large burst must not delay other tenants' events by the whole
/// routing backlog: the router serves every tenant with unrouted events in each batch, and
/// keeps id order within a tenant. With more tenants than fit in a batch, it goes round them.
#[tokio::test]
async fn routing_serves_every_tenant_in_turn_and_keeps_order_within_a_tenant() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &ok.url(), &["*"], Some("busy")).await;
    // Published before the sidecar starts, so the whole burst is one routing backlog.
    c.batch_execute(
        "INSERT INTO outbox.events (event_type, tenant_id, resource_key, payload)
           SELECT 'burst', 'busy', 'k' || (g % 7),
                  jsonb_build_object('r', 'k' || (g % 7), 'seq', (g - 1) / 7)
             FROM generate_series(1, 3000) g;
         INSERT INTO outbox.events (event_type, tenant_id, payload)
           VALUES ('ping', 'quiet', '{}'), ('ping', NULL, '{}');
         INSERT INTO outbox.events (event_type, tenant_id, payload)
           SELECT 'many', 't' || lpad((g % 250)::text, 3, '0'), jsonb_build_object('n', g)
             FROM generate_series(0, 749) g;",
    )
    .await
    .unwrap();
    let engine = start(&db, &["--route-batch", "100"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while scalar_i64(
        &c,
        "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL",
    )
    .await
        > 0
    {
        assert!(Instant::now() < deadline, "routing did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The quiet tenant was routed in the first batch, ahead of the burst published before it.
    // The tenant-less event ('' sorts first) comes round once the walk over the 252 tenants
    // wraps, in the third batch: behind at most a few of the burst's events, not 3000.
    let routed_before = |who: &str| {
        format!(
            "SELECT count(*) FROM outbox.events b, outbox.events q
              WHERE b.tenant_id = 'busy' AND q.event_type = 'ping' AND q.tenant_id {who}
                AND b.routed_at < q.routed_at"
        )
    };
    assert_eq!(scalar_i64(&c, &routed_before("= 'quiet'")).await, 0);
    let before_tenantless = scalar_i64(&c, &routed_before("IS NULL")).await;
    assert!(before_tenantless <= 10, "{before_tenantless}");
    // 250 tenants with 3 events each, 100 per batch: no tenant's second event is routed in
    // an earlier batch than any tenant's first one (the batch that wraps round has both).
    let fair = c
        .query_one(
            "WITH r AS (SELECT routed_at, row_number() OVER (PARTITION BY tenant_id ORDER BY id) n
                          FROM outbox.events WHERE event_type = 'many')
             SELECT (SELECT max(routed_at) FROM r WHERE n = 1)
                 <= (SELECT min(routed_at) FROM r WHERE n = 2)",
            &[],
        )
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(
        fair,
        "a tenant's second event was routed before another tenant's first"
    );
    // Within a tenant, routing follows id order.
    let out_of_order = scalar_i64(
        &c,
        "SELECT count(*) FROM (SELECT routed_at, lag(routed_at) OVER (PARTITION BY tenant_id
                                                                     ORDER BY id) AS prev
                                 FROM outbox.events) s
          WHERE s.routed_at < s.prev",
    )
    .await;
    assert_eq!(out_of_order, 0);
    assert!(ok.wait_for_count(3000, Duration::from_secs(30)).await);
    assert_eq!(order_violations(&ok.requests()), 0);
    engine.stop().await;
}

#[tokio::test]
async fn retention_deletes_old_work_and_keeps_recent_and_dead_work() {
    let db = fresh_db().await;
    let c = db.client().await;
    let ok = Receiver::ok(TEST_SECRET).await;
    let failing = Receiver::start(TEST_SECRET, always(Reply::status(500))).await;
    add_endpoint(&c, &ok.url(), &["ok.*"], None).await;
    add_endpoint(&c, &failing.url(), &["fail.*"], None).await;
    let engine = start(
        &db,
        &[
            "--retention-interval",
            "200ms",
            "--circuit-failures",
            "1000",
        ],
    )
    .await;
    let old = |t: &str| {
        format!(
            "INSERT INTO outbox.events (event_type, payload, created_at) \
             VALUES ('{t}', '{{}}', now() - interval '8 days')"
        )
    };
    for _ in 0..3 {
        c.execute(&old("ok.old"), &[]).await.unwrap();
    }
    // 8 days old and failing: dead at once (older than the 24 h max age), kept 30 days.
    c.execute(&old("fail.old"), &[]).await.unwrap();
    let recent = Event::new("ok.new").publish(&c).await;
    wait_until(
        Duration::from_secs(15),
        "old succeeded work deleted",
        || async {
            scalar_i64(
                &c,
                "SELECT count(*) FROM outbox.deliveries WHERE state = 'succeeded'",
            )
            .await
                == 1
                && scalar_i64(&c, "SELECT count(*) FROM outbox.events").await == 2
        },
    )
    .await;
    assert_eq!(
        ok.count(),
        4,
        "everything was delivered before it was deleted"
    );
    let kept: Vec<String> = c
        .query("SELECT event_type FROM outbox.events ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, ["fail.old", "ok.new"]);
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.dead_deliveries").await,
        1
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.attempts a JOIN outbox.deliveries d ON d.id = a.delivery_id").await,
        scalar_i64(&c, "SELECT count(*) FROM outbox.attempts").await,
        "no orphaned attempts"
    );
    // Once the dead delivery is older than its retention, it goes too (with its event).
    c.execute(
        "UPDATE outbox.deliveries SET completed_at = now() - interval '31 days' WHERE state = 'dead'",
        &[],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(15), "old dead work deleted", || async {
        scalar_i64(&c, "SELECT count(*) FROM outbox.events").await == 1
    })
    .await;
    let left: String = c
        .query_one("SELECT event_id FROM outbox.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, recent);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_recovers_by_itself_from_a_postgres_restart() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    // Its own cluster: restarting the shared one would break other tests. Durable, as in
    // production: with synchronous_commit=off the crash may take the last recorded outcome
    // with it, and that delivery would wait for its lease (45 s) to be sent again.
    let mut pg = Cluster::throwaway(PgOptions {
        fsync: true,
        ..PgOptions::default()
    })
    .await
    .expect("own PostgreSQL");
    let (url, name) = pg.create_database("outboxd_restart").await.unwrap();
    let db = TestDb { url, name };
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;
    for i in 0..20 {
        Event::new("before")
            .key("k")
            .payload(json!({"r": "k", "seq": i}))
            .publish(&c)
            .await;
    }
    assert!(rx.wait_for_count(20, Duration::from_secs(10)).await);

    // Immediate shutdown: like a crash or a failover; every connection breaks.
    pg.restart(Restart::Immediate).await.expect("restart");
    let c = db.client().await;
    for i in 20..40 {
        Event::new("after")
            .key("k")
            .payload(json!({"r": "k", "seq": i}))
            .publish(&c)
            .await;
    }
    wait_all_finished(&c, Duration::from_secs(30)).await;
    let ok = rx.successes_by_id();
    assert_eq!(ok.len(), 40, "every event delivered across the restart");
    assert_eq!(order_violations(&rx.requests()), 0);
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}/readyz", engine.listen_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200, "ready again after the restart");
    engine.stop().await;
    pg.stop().await;
}

#[tokio::test]
async fn misconfiguration_fails_fast_with_a_clear_message_and_exit_code() {
    let db = fresh_db().await;
    let run = |envs: Vec<(&'static str, String)>| async move {
        let mut outboxd = Sidecar::command(OUTBOXD)
            .arg("run")
            .env("OUTBOXD_LISTEN", "127.0.0.1:0")
            .envs(envs)
            .spawn()
            .unwrap();
        let status = outboxd
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("exits by itself");
        (status.code(), outboxd.log())
    };
    let (code, err) = run(vec![]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");

    let (code, err) = run(vec![("DATABASE_URL", "mysql://nope".into())]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");

    let (code, err) = run(vec![
        ("DATABASE_URL", db.url.clone()),
        ("OUTBOXD_RETRY_SCHEDULE", "5s,soon".into()),
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("OUTBOXD_RETRY_SCHEDULE"), "{err}");

    // Nothing listens on this port: a runtime failure, with the address in the message,
    // once OUTBOXD_STARTUP_TIMEOUT has passed (by default `run` waits for the database).
    let port = free_port();
    let (code, err) = run(vec![
        (
            "DATABASE_URL",
            format!("postgres://postgres:secretpw@127.0.0.1:{port}/x?connect_timeout=2"),
        ),
        ("OUTBOXD_STARTUP_TIMEOUT", "1s".into()),
    ])
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("OUTBOXD_STARTUP_TIMEOUT"), "{err}");
    assert!(!err.contains("secretpw"), "the password leaked: {err}");

    // A database that was never migrated: says what to do.
    let c = db.client().await;
    let name = format!("{}_bare", db.name);
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let unmigrated = db
        .url
        .replace(&format!("/{}", db.name), &format!("/{name}"));
    let (code, err) = run(vec![("DATABASE_URL", unmigrated)]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("outboxd migrate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_the_xmin_horizon_does_not_stall_delivery() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let engine = start(&db, &[]).await;
    // Holds back the horizon: nothing the engine deletes or updates can be vacuumed, so every
    // queue index fills with dead entries while it is open.
    let mut holder = db.client().await;
    let pin = holder
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    pin.query_one("SELECT count(*) FROM outbox.events", &[])
        .await
        .unwrap();
    c.execute(
        "INSERT INTO outbox.events (event_type, resource_key, payload)
         SELECT 'x', 'k' || (g % 50), jsonb_build_object('r', 'k' || (g % 50), 'seq', g / 50)
           FROM generate_series(0, 2999) g",
        &[],
    )
    .await
    .unwrap();
    wait_all_finished(&c, Duration::from_secs(60)).await;
    assert_eq!(rx.successes_by_id().len(), 3000);
    assert_eq!(order_violations(&rx.requests()), 0);
    pin.rollback().await.unwrap();
    engine.stop().await;
}

#[tokio::test]
async fn rate_limited_endpoint_is_paced_and_still_gets_everything() {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let ep = add_endpoint(&c, &rx.url(), &["*"], None).await;
    c.execute(
        "UPDATE outbox.endpoints SET rate_limit = 10 WHERE id = $1",
        &[&ep],
    )
    .await
    .unwrap();
    let engine = start(&db, &[]).await;
    c.execute(
        "INSERT INTO outbox.events (event_type, payload)
         SELECT 'x', jsonb_build_object('n', g) FROM generate_series(1, 25) g",
        &[],
    )
    .await
    .unwrap();
    wait_all_finished(&c, Duration::from_secs(20)).await;
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 25);
    // 10 per second: 25 requests span at least ~2.4 s, and no second holds more than ~10.
    let span = reqs[24].at - reqs[0].at;
    assert!(
        span >= Duration::from_millis(2300),
        "25 requests in {span:?}"
    );
    for w in reqs.windows(12) {
        assert!(
            w[11].at - w[0].at >= Duration::from_millis(1000),
            "burst above the rate limit"
        );
    }
    engine.stop().await;
}

/// A "database" that accepts TCP connections and never answers; counts them. (Not the test
/// kit's receiver: that one speaks HTTP and answers a PostgreSQL startup message with a 400.)
async fn silent_server() -> (
    u16,
    tokio::sync::watch::Receiver<usize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, count) = tokio::sync::watch::channel(0);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..16 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => return,
            }
            accepted.send_replace(held.len());
        }
    });
    (port, count, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_never_answers_fails_start_up_and_sigterm_still_exits_zero() {
    let (port, mut accepted, task) = silent_server().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/x?connect_timeout=2");
    let t0 = Instant::now();
    let mut s = Sidecar::run(
        OUTBOXD,
        &url,
        &[
            ("OUTBOXD_LISTEN", "127.0.0.1:0"),
            ("OUTBOXD_STARTUP_TIMEOUT", "1s"),
        ],
    );
    let status = s
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("gives up by itself");
    assert_eq!(status.code(), Some(1), "{}", s.log());
    assert!(s.log().contains("no answer within 2s"), "{}", s.log());
    assert!(t0.elapsed() < Duration::from_secs(10));

    // SIGTERM while start-up is still waiting for the database (it has connected, so its
    // signal handlers, installed first, are in place): a clean exit 0.
    let before = *accepted.borrow_and_update();
    let url = format!("postgres://postgres@127.0.0.1:{port}/x?connect_timeout=30");
    let mut s = Sidecar::run(OUTBOXD, &url, &[("OUTBOXD_LISTEN", "127.0.0.1:0")]);
    tokio::time::timeout(Duration::from_secs(10), accepted.wait_for(|&n| n > before))
        .await
        .expect("outboxd connects to the database")
        .unwrap();
    s.sigterm();
    let status = s
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("stops on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", s.log());
    task.abort();
}
