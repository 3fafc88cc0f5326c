//! The receiver: it verifies signatures (one secret, or one per path), records, and plays each
//! kind of reply as the client sees it on the wire.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use testkit::{Answer, Receiver, Reply, TEST_SECRET, always, behaviour, script, sequence};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OTHER_SECRET: &str = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQ=";
const WAIT: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A POST as outboxd sends it: signed with `secret`, timestamped now.
fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
    body: &'static [u8],
) -> reqwest::RequestBuilder {
    let ts = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(id, ts, body)
        .unwrap();
    http.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
}

/// A raw connection that has sent one small POST to `/hook`.
async fn raw_post(rx: &Receiver) -> TcpStream {
    let mut s = TcpStream::connect(rx.addr()).await.unwrap();
    s.write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    s
}

/// Everything the server sends until it closes (or resets) the connection.
async fn read_to_end(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("the receiver ends the connection")?;
    Ok(got)
}

#[tokio::test]
async fn records_and_verifies_signed_requests() -> Result<(), Box<dyn std::error::Error>> {
    let rx = Receiver::ok(TEST_SECRET).await;
    let http = http();
    let body: &[u8] = br#"{"id":42,"status":"paid"}"#;

    let resp = post(&http, &rx.url(), TEST_SECRET, "msg_good", body)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    // Signed for one body, sent with another.
    let tampered = post(&http, &rx.url(), TEST_SECRET, "msg_tampered", body)
        .body(&br#"{"id":42,"status":"refunded"}"#[..]);
    assert_eq!(tampered.send().await?.status(), 200);

    assert!(rx.wait_for_count(2, WAIT).await);
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(
        (r.seq, r.id.as_str(), r.path.as_str()),
        (0, "msg_good", "/hook")
    );
    assert_eq!(&r.body[..], body);
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.timestamp > 0);
    assert!(r.signature_ok, "a correctly signed request verifies");
    assert!(!reqs[1].signature_ok, "a tampered body must not verify");
    assert_eq!(r.answer, Answer::Status(200));
    assert!(r.completed());
    assert_eq!(rx.successes_by_id().get("msg_good"), Some(&1));
    assert_eq!(rx.counters().bad_signatures, 1);

    // The script sees the request: fail the third request, answer the others with its id.
    rx.set_behaviour(behaviour(|req, n| {
        if n == 2 {
            Reply::status(503).with_header("retry-after", "1")
        } else {
            Reply::ok().with_body(format!("thanks for {}", req.id))
        }
    }));
    let resp = post(&http, &rx.url(), TEST_SECRET, "msg_retry", body)
        .send()
        .await?;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let resp = post(&http, &rx.url(), TEST_SECRET, "msg_retry", body)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await?, "thanks for msg_retry");
    assert_eq!(rx.count(), 4);
    assert_eq!(rx.successes_by_id().get("msg_retry"), Some(&1));

    rx.clear();
    assert_eq!((rx.count(), rx.requests().len()), (0, 0));
    Ok(())
}

#[tokio::test]
async fn a_delayed_answer_is_recorded_on_arrival_and_completed_once_answered() {
    let rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_delay(Duration::from_millis(300))),
    )
    .await;
    let started = Instant::now();
    let slow = tokio::spawn(http().post(rx.url()).body("{}").send());
    assert!(rx.wait_for_count(1, WAIT).await);
    assert!(!rx.requests()[0].completed());
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(rx.requests()[0].completed());
}

#[tokio::test]
async fn a_status_sequence_plays_in_order_and_its_last_reply_repeats() {
    let rx = Receiver::start(
        TEST_SECRET,
        sequence([
            Reply::status(503),
            Reply::status(429).with_header("retry-after", "2"),
            Reply::status(204).label("finally"),
        ]),
    )
    .await;
    let http = http();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(http.post(rx.url()).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [503, 429, 204, 204]);
    let reqs = rx.requests();
    assert_eq!(reqs[3].label, Some("finally"));
    assert!(reqs[2].is_2xx() && !reqs[1].is_2xx());

    // A new sequence starts from its first reply.
    rx.set_script(sequence([Reply::status(500), Reply::ok()]));
    let status = http.post(rx.url()).send().await.unwrap().status();
    assert_eq!(status, 500);
}

#[tokio::test]
async fn answered_ticks_order_answers_and_arrivals_exactly() {
    let rx = Receiver::start(
        TEST_SECRET,
        behaviour(|_, n| match n {
            1 => Reply::ok().with_delay(Duration::from_millis(300)),
            _ => Reply::ok(),
        }),
    )
    .await;
    let http = http();
    http.post(rx.url()).send().await.unwrap();
    let slow = tokio::spawn(http.post(rx.url()).send());
    assert!(rx.wait_for_count(2, WAIT).await);
    http.post(rx.url()).send().await.unwrap(); // arrives while the second is delayed
    slow.await.unwrap().unwrap();
    let r = rx.requests();
    let answered = |i: usize| r[i].answered.expect("answered").tick;
    assert!(
        answered(0) < r[1].arrival_tick,
        "the second came after the first's answer"
    );
    assert!(
        r[2].arrival_tick < answered(1),
        "the third came before the second's answer"
    );
    assert!(r[1].answered.unwrap().at - r[1].at >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_hang_reads_the_request_never_answers_and_closes_later() {
    let rx = Receiver::start(TEST_SECRET, always(Reply::hang(Duration::from_secs(30)))).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client.post(rx.url()).body("{}").send().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    let r = &rx.requests()[0];
    assert_eq!((r.answer, &r.body[..]), (Answer::Hang, &b"{}"[..]));
    // A client that gave up waiting did not cut its request short.
    assert!(rx.wait_for_open_connections(0, WAIT).await);
    assert_eq!(rx.counters().truncated, 0);

    // The receiver closes a hung connection itself once the hang is over.
    rx.set_script(always(Reply::hang(Duration::from_millis(200))));
    let started = Instant::now();
    let mut s = raw_post(&rx).await;
    assert_eq!(read_to_end(&mut s).await.unwrap(), b"", "no answer at all");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_reset_is_a_tcp_reset_without_an_answer() {
    let rx = Receiver::start(TEST_SECRET, always(Reply::reset())).await;
    let mut s = raw_post(&rx).await;
    let err = read_to_end(&mut s).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");

    let err = http().post(rx.url()).body("{}").send().await.unwrap_err();
    assert!(format!("{err:?}").contains("reset"), "{err:?}");
    assert!(
        rx.wait_for(WAIT, |r| r.len() == 2 && r.iter().all(|r| r.completed()))
            .await
    );
    assert!(rx.requests().iter().all(|r| r.answer == Answer::Reset));
}

#[tokio::test]
async fn a_close_ends_the_connection_without_an_answer() {
    let rx = Receiver::start(TEST_SECRET, always(Reply::close())).await;
    let mut s = raw_post(&rx).await;
    assert_eq!(read_to_end(&mut s).await.expect("a clean FIN"), b"");
    assert_eq!(rx.requests()[0].answer, Answer::Close);
}

#[tokio::test]
async fn a_trickled_body_comes_in_pieces_over_the_time_given() {
    let over = Duration::from_millis(400);
    let rx = Receiver::start(
        TEST_SECRET,
        always(Reply::ok().with_body("start:").trickle(100, over)),
    )
    .await;
    let started = Instant::now();
    let mut resp = http().post(rx.url()).send().await.unwrap();
    assert_eq!(resp.content_length(), Some(100));
    let first = resp.chunk().await.unwrap().expect("the start of the body");
    assert_eq!(
        &first[..],
        b"start:",
        "the start comes at once, with the status line"
    );
    let mut pieces = 1;
    let mut body = first.to_vec();
    while let Some(piece) = resp.chunk().await.unwrap() {
        pieces += 1;
        body.extend_from_slice(&piece);
    }
    assert!(started.elapsed() >= over, "{:?}", started.elapsed());
    assert!(pieces > 5, "{pieces} pieces");
    assert_eq!(body, [&b"start:"[..], &[b'a'; 94]].concat());
}

#[tokio::test]
async fn a_huge_body_streams_every_byte() {
    let n = 10 * 1024 * 1024;
    let rx = Receiver::start(TEST_SECRET, always(Reply::ok().huge_body(n))).await;
    let resp = http().post(rx.url()).send().await.unwrap();
    assert_eq!(resp.content_length(), Some(n));
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len() as u64, n);
    assert!(body.iter().all(|&b| b == b'a'));
}

#[tokio::test]
async fn an_endless_body_goes_on_until_the_client_hangs_up() {
    let rx = Receiver::start(TEST_SECRET, always(Reply::ok().endless_body().fill("é"))).await;
    let mut resp = http().post(rx.url()).send().await.unwrap();
    assert_eq!(resp.content_length(), None);
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let mut body = Vec::new();
    while body.len() < 4 * 1024 * 1024 {
        body.extend_from_slice(&resp.chunk().await.unwrap().expect("it does not end"));
    }
    body.truncate(body.len() / 2 * 2);
    assert_eq!(body, "é".repeat(body.len() / 2).into_bytes());
    drop(resp);
    assert!(
        rx.wait_for_open_connections(0, WAIT).await,
        "the receiver lets go"
    );
}

#[tokio::test]
async fn each_path_can_have_its_own_secret() {
    let rx = Receiver::builder()
        .secret(TEST_SECRET)
        .path_secret("/ep/1", OTHER_SECRET)
        .start()
        .await;
    let http = http();
    let send = |path: &str, secret: &str| post(&http, &rx.url_for(path), secret, "m", b"{}").send();
    send("/ep/1", OTHER_SECRET).await.unwrap();
    send("/ep/1", TEST_SECRET).await.unwrap();
    send("/ep/2?q=1", TEST_SECRET).await.unwrap();
    let ok: Vec<(String, bool)> = rx
        .requests()
        .into_iter()
        .map(|r| (r.path, r.signature_ok))
        .collect();
    assert_eq!(
        ok,
        [
            ("/ep/1".into(), true),
            ("/ep/1".into(), false),
            ("/ep/2?q=1".into(), true)
        ]
    );

    // Without any secret nothing verifies.
    let bare = Receiver::builder().start().await;
    post(&http, &bare.url(), TEST_SECRET, "m", b"{}")
        .send()
        .await
        .unwrap();
    assert!(!bare.requests()[0].signature_ok);
}

#[tokio::test]
async fn without_recording_only_counters_and_the_script_see_requests() {
    let seen = Arc::new(AtomicU64::new(0));
    let observed = Arc::clone(&seen);
    let rx = Receiver::builder()
        .secret(TEST_SECRET)
        .record(false)
        .script(script(move |req| {
            if req.signature_ok {
                observed.fetch_add(1, Ordering::Relaxed);
            }
            Reply::status(204)
        }))
        .start()
        .await;
    let http = http();
    for i in 0..50 {
        let resp = post(&http, &rx.url(), TEST_SECRET, "m", b"{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "request {i}");
    }
    assert!(rx.wait_for_count(50, WAIT).await);
    assert!(rx.requests().is_empty());
    assert_eq!(seen.load(Ordering::Relaxed), 50);
    let c = rx.counters();
    assert_eq!((c.requests, c.connections, c.bad_signatures), (50, 1, 0));
    rx.clear();
    assert_eq!(rx.count(), 0);
}

#[tokio::test]
async fn requests_cut_short_and_garbage_are_counted() {
    let rx = Receiver::ok(TEST_SECRET).await;
    // The body stops half-way.
    let mut s = TcpStream::connect(rx.addr()).await.unwrap();
    s.write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"a\":")
        .await
        .unwrap();
    drop(s);
    // The head stops half-way.
    let mut s = TcpStream::connect(rx.addr()).await.unwrap();
    s.write_all(b"POST /hook HTTP/1.1\r\nhost").await.unwrap();
    drop(s);
    // TLS spoken to a plain HTTP receiver.
    let mut s = TcpStream::connect(rx.addr()).await.unwrap();
    s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        .await
        .unwrap();
    let _ = read_to_end(&mut s).await;
    assert!(rx.wait_for_open_connections(0, WAIT).await);
    let c = rx.counters();
    assert_eq!(
        (c.truncated, c.protocol_errors, c.requests),
        (2, 1, 0),
        "{c:?}"
    );
    assert_eq!(rx.protocol_error_examples().len(), 1);
}

#[tokio::test]
async fn connections_are_counted_exactly_and_kept_alive() {
    let rx = Receiver::ok(TEST_SECRET).await;
    assert_eq!(rx.connections_so_far().await, 0);
    let http = http();
    for _ in 0..3 {
        http.post(rx.url()).send().await.unwrap();
    }
    assert_eq!(
        rx.connections_so_far().await,
        1,
        "one kept-alive connection"
    );
    let _s = TcpStream::connect(rx.addr()).await.unwrap();
    assert_eq!(
        rx.connections_so_far().await,
        2,
        "counted before the accept loop saw it"
    );
}

#[tokio::test]
async fn a_panicking_script_answers_500() {
    let rx = Receiver::start(TEST_SECRET, script(|_| panic!("the script is broken"))).await;
    let resp = http().post(rx.url()).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert!(resp.text().await.unwrap().contains("panicked"));
}

#[tokio::test]
async fn a_stopped_receiver_is_gone() {
    let rx = Receiver::start(TEST_SECRET, always(Reply::hang(Duration::from_secs(60)))).await;
    let addr = rx.addr();
    let mut hung = raw_post(&rx).await;
    assert!(rx.wait_for_count(1, WAIT).await);
    rx.stop().await;
    assert_eq!(read_to_end(&mut hung).await.unwrap_or_default(), b"");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
}
