//! Serves a non-recording receiver (signatures checked, `204` to everything) for a load
//! generator, and reports what it got: how the receiver's throughput figure is measured.
//!
//! ```sh
//! cargo run --release -p testkit --example receiver_load -- 15   # serves for 15 s
//! # then run the `wrk` command it prints, from another shell
//! ```
//!
//! 2026-11-30, the 2-core development machine (busy with other builds, load average 4), wrk
//! on the same cores: about 40,000 signed requests/s (`wrk -t1 -c16`, keep-alive), every
//! signature verified. The bench needs 30,000.

use std::time::{Duration, Instant};

use testkit::{Receiver, Reply, TEST_SECRET, always};

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let rx = Receiver::builder()
        .secret(TEST_SECRET)
        .record(false)
        .script(always(Reply::status(204)))
        .start()
        .await;

    // One signed request, replayed by wrk (the timestamp stays valid for 5 minutes).
    let (id, body) = ("msg_load", r#"{"n":1,"k":2,"s":3}"#);
    let ts = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(TEST_SECRET)
        .expect("the test secret")
        .sign(id, ts, body.as_bytes())
        .expect("a UTF-8 body");
    let script = std::env::temp_dir().join("receiver_load.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\n\
             wrk.headers[\"content-type\"] = \"application/json\"\n\
             wrk.headers[\"webhook-id\"] = \"{id}\"\n\
             wrk.headers[\"webhook-timestamp\"] = \"{ts}\"\n\
             wrk.headers[\"webhook-signature\"] = \"{signature}\"\n"
        ),
    )
    .expect("writing the wrk script");
    println!(
        "wrk -t1 -c16 -d{}s -s {} {}",
        secs.saturating_sub(3).max(1),
        script.display(),
        rx.url()
    );

    let started = Instant::now();
    let mut last = (Instant::now(), 0);
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = rx.counters();
        let rate = (c.requests - last.1) as f64 / last.0.elapsed().as_secs_f64();
        println!(
            "{:>3} s: {rate:>8.0} requests/s ({} in all, {} bad signatures, {} connections)",
            started.elapsed().as_secs(),
            c.requests,
            c.bad_signatures,
            c.connections
        );
        last = (Instant::now(), c.requests);
    }
}
