//! `outboxd demo`: the one-command way to see outboxd work.
//!
//! Starts a throwaway PostgreSQL (unless `DATABASE_URL` is given), migrates it, starts a local
//! receiver that checks every signature, registers two endpoints, publishes sample events in
//! ordinary transactions (one of them rolled back, one receiver failure to show a retry),
//! waits for the deliveries, prints them and the `outbox.attempts` rows, then pushes a quick
//! load through and reports deliveries per second. It leaves one dead delivery (an event
//! older than the retry max age that its receiver refused) and prints a one-time sign-in
//! link to the console, where retrying it succeeds; it then runs until stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::embedded_pg::{EmbeddedPostgres, Options};
use crate::engine::Engine;
use crate::signing::{self, Secret};
use crate::sql::demo as q;

const DEMO_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("could not start a local PostgreSQL: {0}")]
    Postgres(#[from] crate::embedded_pg::EmbeddedPgError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("receiver: {0}")]
    Receiver(std::io::Error),
    #[error("deliveries did not finish within {0:?}")]
    Timeout(Duration),
    #[error("a signature did not verify")]
    BadSignature,
}

impl From<tokio_postgres::Error> for DemoError {
    fn from(e: tokio_postgres::Error) -> Self {
        DemoError::Db(e.into())
    }
}

#[derive(Default)]
struct Seen {
    total: u64,
    bad_signatures: u64,
    /// How often each webhook-id was seen (the demo fails the first try of "retry me").
    tries: HashMap<String, u32>,
}

#[derive(Clone)]
struct ReceiverState {
    secret: Arc<Secret>,
    seen: Arc<Mutex<Seen>>,
    quiet: Arc<std::sync::atomic::AtomicBool>,
    /// Until set, the receiver refuses "dead until retried" (so it dies, and a retry from
    /// the console, after the demo's story, succeeds).
    accept_overdue: Arc<std::sync::atomic::AtomicBool>,
}

async fn receive(
    State(s): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let ok = signing::verify(
        std::slice::from_ref(&*s.secret),
        id,
        ts.parse().unwrap_or(0),
        &body,
        sig,
    );
    let retry_me = body.windows(8).any(|w| w == b"retry me");
    let tries = {
        let mut seen = s.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.total += 1;
        if !ok {
            seen.bad_signatures += 1;
        }
        let t = seen.tries.entry(id.to_owned()).or_insert(0);
        *t += 1;
        *t
    };
    if !s.quiet.load(std::sync::atomic::Ordering::Relaxed) {
        println!(
            "  receiver <- {id} signature {} {}",
            if ok { "ok" } else { "BAD" },
            String::from_utf8_lossy(&body[..body.len().min(70)])
        );
    }
    if retry_me && tries == 1 {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy, try again\n");
    }
    let overdue = body.windows(16).any(|w| w == b"dead until retri");
    if overdue && !s.accept_overdue.load(std::sync::atomic::Ordering::Relaxed) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "{\"error\": \"refund service unavailable\"}\n",
        );
    }
    (StatusCode::NO_CONTENT, "")
}

async fn start_receiver(
    state: ReceiverState,
    shutdown: CancellationToken,
) -> Result<SocketAddr, DemoError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Receiver)?;
    let addr = listener.local_addr().map_err(DemoError::Receiver)?;
    let app = Router::new()
        .route("/hooks/{name}", post(receive))
        .with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(addr)
}

/// Runs the demo. `config` is the engine configuration (its `database_url` is ignored when
/// `database_url` is `None`: a throwaway cluster is used); `load_events` sized the load test.
/// With `stay`, the demo keeps running after its story (for the console) until it resolves.
pub async fn run(
    mut config: Config,
    database_url: Option<String>,
    load_events: usize,
    stay: Option<impl std::future::Future<Output = ()>>,
) -> Result<(), DemoError> {
    let _pg; // keeps the throwaway cluster alive until the end
    let url = match database_url {
        Some(u) => u,
        None => {
            println!("• starting a throwaway PostgreSQL (no DATABASE_URL given) …");
            let pg = tokio::task::spawn_blocking(|| EmbeddedPostgres::start(Options::default()))
                .await
                .map_err(|e| DemoError::Receiver(std::io::Error::other(e)))??;
            let u = pg.url();
            println!("  {u}");
            _pg = pg;
            u
        }
    };
    let mut client = crate::db::connect(&url).await?;
    crate::db::migrate(&mut client).await?;
    println!("• schema migrated (outbox.events, outbox.deliveries, outbox.attempts, …)");

    let shutdown = CancellationToken::new();
    let secret = Secret::parse(DEMO_SECRET).map_err(|_| DemoError::BadSignature)?;
    let state = ReceiverState {
        secret: Arc::new(secret),
        seen: Arc::default(),
        quiet: Arc::default(),
        accept_overdue: Arc::default(),
    };
    let addr = start_receiver(state.clone(), shutdown.clone()).await?;
    println!("• receiver listening on http://{addr}/hooks/… (verifies every signature)");

    // Re-running the demo against the same database starts from a clean slate of endpoints.
    client.execute(q::RESET_ENDPOINTS, &[]).await?;
    for (name, types, tenant) in [
        ("demo-orders", "{order.*}", Some("acme")),
        ("demo-everything", "{*}", None::<&str>),
    ] {
        let url = format!("http://{addr}/hooks/{name}");
        let id: i64 = client
            .query_one(q::ADD_ENDPOINT, &[&url, &types, &tenant, &DEMO_SECRET])
            .await?
            .get(0);
        if tenant.is_none() {
            client.execute(q::ALL_TENANTS, &[&id]).await?;
        }
        println!(
            "• endpoint {id}: {url} subscribed to {types} (tenant {})",
            tenant.unwrap_or("all")
        );
    }

    config.database_url = url.clone();
    config.migrate = false;
    // The console needs a token to sign in with; the demo makes one up when none was given.
    let admin_token = config
        .admin_token
        .get_or_insert_with(|| {
            let bytes: [u8; 24] = rand::random();
            format!("demo-{}", hex::encode(bytes))
        })
        .clone();
    if config.allow_networks.is_empty() {
        config.allow_networks = vec!["127.0.0.0/8".parse().map_err(|_| DemoError::BadSignature)?];
    }
    if config.retry.schedule.first() > Some(&Duration::from_secs(1)) {
        config.retry.schedule = vec![Duration::from_millis(500), Duration::from_secs(1)];
    }
    let max_age = config.retry.max_age;
    let engine = Engine::start(config).await?;
    println!(
        "• outboxd running; metrics at http://{}/metrics",
        engine.listen_addr
    );

    println!("• publishing sample events in application transactions …");
    let tx = client.transaction().await?;
    for (i, status) in ["created", "paid", "shipped"].iter().enumerate() {
        tx.query(
            q::PUBLISH_ORDER,
            &[
                &format!("order.{status}"),
                &format!(r#"{{"order": 42, "step": {i}, "status": "{status}"}}"#),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    let tx = client.transaction().await?;
    tx.query(q::PUBLISH_CANCELLED, &[]).await?;
    tx.rollback().await?;
    println!("  (order.cancelled for order 43 was rolled back: it must never arrive)");
    client.execute(q::INSERT_INVOICE, &[]).await?;
    let overdue_secs = (max_age + Duration::from_secs(3600)).as_secs_f64();
    let overdue: String = client
        .query_one(q::PUBLISH_OVERDUE, &[&overdue_secs])
        .await?
        .get(0);
    println!(
        "  (invoice.refunded {overdue} is older than the retry max age and its receiver answers 500: \
         it dies, and waits for you in the console)"
    );

    wait_all_finished(&client, Duration::from_secs(30)).await?;
    println!("\n• deliveries:");
    for r in client.query(q::DELIVERIES, &[]).await? {
        println!(
            "  delivery {:>3}  endpoint {}  {:<16} {:<10} {:<10} attempts {}",
            r.get::<_, i64>(0),
            r.get::<_, i64>(1),
            r.get::<_, String>(2),
            r.get::<_, Option<String>>(3).unwrap_or_default(),
            r.get::<_, String>(4),
            r.get::<_, i32>(5)
        );
    }
    println!("\n• outbox.attempts:");
    for r in client.query(q::ATTEMPTS, &[]).await? {
        println!(
            "  delivery {:>3}  attempt {}  status {:<4} {:<7} {:>4} ms  {}",
            r.get::<_, i64>(0),
            r.get::<_, i32>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, i32>(4),
            match r.get::<_, String>(5) {
                s if s.is_empty() => String::new(),
                s => format!("next attempt at {s}"),
            }
        );
    }

    if load_events > 0 {
        state
            .quiet
            .store(true, std::sync::atomic::Ordering::Relaxed);
        println!(
            "\n• quick load: {load_events} events over 1,000 resource keys, in transactions of 100 …"
        );
        let before: i64 = client.query_one(q::COUNT_DELIVERIES, &[]).await?.get(0);
        let t0 = Instant::now();
        let mut published = 0;
        while published < load_events {
            let n = (load_events - published).min(100) as i64;
            client
                .execute(q::LOAD_BATCH, &[&(published as i64), &n])
                .await?;
            published += n as usize;
        }
        wait_all_finished(&client, Duration::from_secs(600)).await?;
        let elapsed = t0.elapsed();
        let after: i64 = client.query_one(q::COUNT_DELIVERIES, &[]).await?.get(0);
        let n = after - before;
        println!(
            "  {n} deliveries (2 endpoints) in {:.2} s: {:.0} deliveries/s, publishing included",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
    }

    let seen = state.seen.lock().unwrap_or_else(|p| p.into_inner()).total;
    let bad = state
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bad_signatures;
    println!("\n• receiver saw {seen} requests, {bad} with a bad signature");
    if bad > 0 {
        engine.stop().await;
        shutdown.cancel();
        return Err(DemoError::BadSignature);
    }
    if let Some(stay) = stay {
        // From now on the receiver takes the dead event: a retry in the console succeeds.
        state
            .accept_overdue
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let base = format!("http://{}", engine.listen_addr);
        let link = crate::console::session::login_link(
            &admin_token,
            &base,
            chrono::Utc::now().timestamp(),
        );
        println!("\n• the console (signed in; the link works once, for 10 minutes):");
        println!("  {link}");
        println!("  Search for {overdue}: its delivery is dead; retry it and watch it succeed.");
        println!("  Admin API: curl -H 'Authorization: Bearer {admin_token}' {base}/v1/events");
        println!("• running until Ctrl-C …");
        stay.await;
    }
    engine.stop().await;
    shutdown.cancel();
    println!("• done. Re-run with DATABASE_URL=… to use your own database.");
    Ok(())
}

async fn wait_all_finished(
    client: &tokio_postgres::Client,
    deadline: Duration,
) -> Result<(), DemoError> {
    let t0 = Instant::now();
    loop {
        let row = client.query_one(q::UNFINISHED, &[]).await?;
        if row.get::<_, i64>(0) == 0 {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            return Err(DemoError::Timeout(deadline));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
