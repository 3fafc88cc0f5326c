//! Proves the test harness in `tests/common` works: migrated, isolated databases and a
//! receiver that records requests and verifies Standard Webhooks signatures.

use std::time::{Duration, Instant};

use testkit::{Receiver, Reply, Sidecar, TEST_SECRET, fresh_db};

use crate::OUTBOXD;

#[tokio::test]
async fn fresh_databases_are_migrated_and_isolated() {
    let started = Instant::now();
    let a = fresh_db().await;
    let first = started.elapsed();
    let started = Instant::now();
    let b = fresh_db().await;
    eprintln!("fresh_db: first {first:?}, second {:?}", started.elapsed());
    assert_ne!(a.name, b.name);
    assert!(a.url.ends_with(&format!("/{}", a.name)), "{}", a.url);

    let ca = a.client().await;
    let cb = b.client().await;
    for c in [&ca, &cb] {
        let n: i64 = c
            .query_one("SELECT count(*) FROM outbox.events", &[])
            .await
            .expect("outbox.events exists")
            .get(0);
        assert_eq!(n, 0);
    }

    ca.execute(
        "INSERT INTO outbox.events (event_type, resource_key, payload) \
         VALUES ('order.paid', 'order:1', '{\"id\": 1}'::jsonb)",
        &[],
    )
    .await
    .expect("insert into a");
    let in_a: i64 = ca
        .query_one("SELECT count(*) FROM outbox.events", &[])
        .await
        .unwrap()
        .get(0);
    let in_b: i64 = cb
        .query_one("SELECT count(*) FROM outbox.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((in_a, in_b), (1, 0));

    // Migrated to the version this binary expects.
    outboxd::check_schema(&ca).await.expect("a is migrated");
    outboxd::check_schema(&cb).await.expect("b is migrated");
}

#[tokio::test]
async fn receiver_records_and_verifies_signed_requests() -> Result<(), Box<dyn std::error::Error>> {
    let receiver = Receiver::ok(TEST_SECRET).await;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let signer = standardwebhooks::Webhook::new(TEST_SECRET)?;
    let sign = |id: &str, ts: i64, body: &[u8]| signer.sign(id, ts, body).expect("signs");

    let body = br#"{"id":42,"status":"paid"}"#;
    let ts = chrono::Utc::now().timestamp();
    let post = |id: &'static str, signed: &'static [u8], sent: &'static [u8]| {
        http.post(receiver.url())
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign(id, ts, signed))
            .body(sent)
            .send()
    };

    let resp = post("msg_good", body, body).await?;
    assert_eq!(resp.status(), 200);
    let resp = post("msg_tampered", body, br#"{"id":42,"status":"refunded"}"#).await?;
    assert_eq!(resp.status(), 200);

    assert!(receiver.wait_for_count(2, Duration::from_secs(5)).await);
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].id, "msg_good");
    assert_eq!(reqs[0].timestamp, ts);
    assert_eq!(&reqs[0].body[..], body);
    assert_eq!(reqs[0].path, "/hook");
    assert_eq!(reqs[0].headers["content-type"], "application/json");
    assert!(reqs[0].signature_ok, "a correctly signed request verifies");
    assert!(!reqs[1].signature_ok, "a tampered body must not verify");
    assert_eq!(reqs[0].answered, 200);
    assert_eq!(receiver.successes_by_id().get("msg_good"), Some(&1));

    // Programmable behaviour: fail the first request, then succeed with a header.
    receiver.set_behaviour(testkit::behaviour(|req, n| {
        if n == 2 {
            Reply::status(503).with_header("retry-after", "1")
        } else {
            Reply::ok().with_body(format!("thanks for {}", req.id))
        }
    }));
    let resp = post("msg_retry", body, body).await?;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let resp = post("msg_retry", body, body).await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await?, "thanks for msg_retry");
    assert_eq!(receiver.count(), 4);
    assert_eq!(receiver.successes_by_id().get("msg_retry"), Some(&1));

    // A delayed answer is recorded on arrival, and completed once answered.
    receiver.set_behaviour(testkit::always(
        Reply::ok().with_delay(Duration::from_millis(300)),
    ));
    let slow = tokio::spawn(post("msg_slow", body, body));
    assert!(receiver.wait_for_count(5, Duration::from_secs(5)).await);
    assert!(!receiver.requests()[4].completed);
    assert_eq!(slow.await??.status(), 200);
    assert!(receiver.requests()[4].completed);
    Ok(())
}

#[tokio::test]
async fn sidecar_helper_runs_the_binary() {
    let mut help = Sidecar::spawn(OUTBOXD, "postgres://unused", &[], &["--help"]);
    let status = help
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("`outboxd --help` exits");
    assert!(status.success(), "{status:?}\n{}", help.log());
    assert!(help.log().contains("Usage"), "{}", help.log());

    // kill9 leaves no process behind.
    let mut child = Sidecar::spawn(OUTBOXD, "postgres://unused", &[], &["--help"]);
    child.kill9();
    assert!(!child.is_running());
    assert!(child.wait_exit(Duration::ZERO).await.is_some());
}
