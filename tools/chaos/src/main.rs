//! `outboxd-chaos`: a bounded, loopback-only chaos soak of outboxd (issue 4).
//!
//! ```sh
//! cargo run --release --bin outboxd-chaos -- --quick          # CI size, ~90 s
//! cargo run --release --bin outboxd-chaos -- --seconds 300    # longer soak
//! cargo run --release --bin outboxd-chaos -- --quick --seed 42  # replay a schedule
//! ```
//!
//! It starts its own PostgreSQL ([`outboxd::embedded_pg`], fsync on), three misbehaving
//! receivers ([`receiver`]), three `outboxd run` child processes ([`replicas`]) and a few
//! application-like producers ([`producer`]); then, for the chosen time, it SIGKILLs and
//! restarts replicas, does one SIGTERM rolling restart, restarts PostgreSQL twice (fast, then
//! immediate = crash recovery) and flaps the receivers between 200, 500, 429 + Retry-After,
//! hangs, connection resets and slow answers. Then it stops the faults, lets everything drain,
//! and checks the receivers' logs against the database ([`check`]). The output ends with
//!
//! `events=<n> lost=<n> order_violations=<n> duplicates=<n> faults=<n>`
//!
//! and the exit code is non-zero when anything was lost, out of order, delivered although
//! rolled back, stuck, badly signed, or when a replica crashed or a SIGTERM did not exit 0.
//! The `outboxd` binary next to this one is used (built first when run through `cargo run`).

mod check;
mod clock;
mod faults;
mod monitor;
mod producer;
mod receiver;
mod replicas;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Parser;
use outboxd::embedded_pg::{EmbeddedPostgres, Options};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::faults::Fault;
use crate::receiver::{Receiver, lock};
use crate::replicas::ReplicaSet;

/// Replica settings: fast retries and leases so that a minute holds many fault cycles.
const LEASE: Duration = Duration::from_secs(3);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
const RESOURCES: usize = 300;
const REPLICAS: usize = 3;
/// A replica that exited on its own is started again after this long.
const RESPAWN_GAP: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(
    name = "outboxd-chaos",
    about = "Chaos soak of outboxd: replicas killed, PostgreSQL restarted, receivers failing; \
             then checks that nothing was lost, reordered or delivered from a rollback"
)]
struct Args {
    /// CI size: 60 s of faults, at most 60 s of drain (under 3 minutes in all).
    #[arg(long)]
    quick: bool,
    /// Seconds of faults (default 60 with --quick, else 120).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seed of every random choice (fault schedule, receivers, producers); printed at start.
    #[arg(long)]
    seed: Option<u64>,
    /// Application transactions per second (all producers together).
    #[arg(long, default_value_t = 40.0)]
    tps: f64,
    /// Concurrent producers (application sessions).
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Longest wait for the backlog to drain after the faults stop (default 60 s, 120 s).
    #[arg(long)]
    drain_seconds: Option<u64>,
    /// Run PostgreSQL with fsync=off (faster; an immediate restart is then no crash test).
    #[arg(long)]
    no_fsync: bool,
    /// The outboxd binary to run (build it first: `cargo build --release --bin outboxd`).
    #[arg(long, env = "OUTBOXD_BIN", value_name = "PATH")]
    outboxd: Option<PathBuf>,
    /// Keep the work directory (replica logs) even when the run passes.
    #[arg(long)]
    keep: bool,
    /// Extra or overriding replica environment, e.g. `--replica-env OUTBOXD_MAX_AGE=3s`
    /// (repeatable; for experiments: the defaults are what the verdict is calibrated for).
    #[arg(long, value_name = "KEY=VALUE")]
    replica_env: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("outboxd-chaos: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Children are killed on drop (and by PR_SET_PDEATHSIG); PostgreSQL is stopped on drop.
    runtime.shutdown_timeout(Duration::from_secs(10));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("outboxd-chaos: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Everything the checker needs, collected by [`run`].
pub struct RunData {
    pub seed: u64,
    pub chaos: Duration,
    pub fsync: bool,
    pub tps: f64,
    pub receivers: Vec<Arc<Receiver>>,
    /// outbox.endpoints ids, same order as `receivers`.
    pub endpoint_ids: Vec<i64>,
    /// Which receivers get unordered (`misc.*`) events.
    pub gets_misc: Vec<bool>,
    pub ledger: producer::Ledger,
    pub faults: Vec<Fault>,
    pub exits: Vec<replicas::ExitRec>,
    pub spawned: u32,
    pub drain: check::Drain,
    pub samples: monitor::Samples,
    pub workdir: PathBuf,
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let setup = std::time::Instant::now();
    let chaos = Duration::from_secs(args.seconds.unwrap_or(if args.quick { 60 } else { 120 }));
    let drain_limit =
        Duration::from_secs(
            args.drain_seconds
                .unwrap_or(if args.quick { 60 } else { 120 }),
        );
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let fsync = !args.no_fsync;
    let mut rng = StdRng::seed_from_u64(seed);
    println!(
        "outboxd-chaos: seed {seed}, {} of faults, {} tx/s from {} producers, PostgreSQL fsync {}",
        clock::secs(chaos),
        args.tps,
        args.producers,
        if fsync { "on" } else { "off" }
    );

    let bin = outboxd_binary(args.outboxd.as_deref())?;
    let workdir = std::env::temp_dir().join(format!(
        "outboxd-chaos.{}.{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    ));
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;

    // PostgreSQL, migrated, with the application's table.
    let pg = tokio::task::spawn_blocking(move || {
        EmbeddedPostgres::start(Options {
            fsync,
            max_connections: 200,
            ..Options::default()
        })
    })
    .await?
    .context("starting PostgreSQL")?;
    let db_url = pg.url();
    println!(
        "postgres: {db_url} (log {})  work dir: {}",
        pg.log_path().display(),
        workdir.display()
    );
    let pg = Arc::new(Mutex::new(pg));
    let mut admin = outboxd::db::connect(&db_url).await?;
    outboxd::db::migrate(&mut admin)
        .await
        .context("migrating")?;
    admin
        .batch_execute("CREATE TABLE resources (id text PRIMARY KEY, seq int NOT NULL DEFAULT 0);")
        .await?;
    let resources: Vec<String> = (0..RESOURCES).map(|i| format!("res-{i:03}")).collect();
    admin
        .execute(
            "INSERT INTO resources (id) SELECT unnest($1::text[])",
            &[&resources],
        )
        .await?;

    // Receivers and their endpoints: two take everything, one only `res.*`.
    let stop_receivers = CancellationToken::new();
    let mut receivers = Vec::new();
    let mut endpoint_ids = Vec::new();
    let patterns: [&[&str]; 3] = [&["*"], &["*"], &["res.*"]];
    for (i, pattern) in patterns.iter().enumerate() {
        let key: [u8; 32] = rng.random();
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let rx = Receiver::start(
            &format!("rx{}", i + 1),
            &secret,
            rng.random(),
            stop_receivers.clone(),
        )
        .await?;
        let types: Vec<String> = pattern.iter().map(|s| s.to_string()).collect();
        let id: i64 = admin
            .query_one(
                "SELECT outbox.add_endpoint($1, $2, NULL, $3)",
                &[&rx.url(), &types, &secret],
            )
            .await
            .context("add_endpoint")?
            .get(0);
        endpoint_ids.push(id);
        receivers.push(rx);
    }
    let gets_misc = vec![true, true, false];

    // Replicas.
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db_url.as_str()),
        ("OUTBOXD_LISTEN", "127.0.0.1:0"),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("OUTBOXD_RETRY_SCHEDULE", "100ms,200ms,500ms,1s"),
        ("OUTBOXD_REQUEST_TIMEOUT", "1s"),
        ("OUTBOXD_LEASE", "3s"),
        ("OUTBOXD_POLL_INTERVAL", "100ms"),
        ("OUTBOXD_MAX_AGE", "2h"),
        ("OUTBOXD_CIRCUIT_COOLDOWN", "500ms"),
        ("OUTBOXD_SHUTDOWN_GRACE", "3s"),
        ("OUTBOXD_LOG", "info"),
        ("OUTBOXD_LOG_FORMAT", "text"),
        ("NO_COLOR", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut env = env;
    for kv in &args.replica_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--replica-env {kv:?}: expected KEY=VALUE"))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
        println!("replica env override: {k}={v}");
    }
    // Time zero of every figure in the report: the replicas' start.
    clock::start();
    let mut replicas = ReplicaSet::new(bin, workdir.clone(), env, REPLICAS);
    for i in 0..replicas.len() {
        replicas.spawn(i)?;
    }
    for i in 0..replicas.len() {
        if !replicas.wait_started(i, Duration::from_secs(30)).await {
            bail!(
                "replica {} did not start:\n{}",
                replicas.name(i),
                replicas
                    .exits
                    .last()
                    .and_then(|e| e.log_tail.clone())
                    .unwrap_or_default()
            );
        }
    }

    // Go: producers, receivers flapping, the fault director.
    let t0 = clock::now();
    println!(
        "{} chaos starts (setup took {}): {} replicas, {} receivers, {} resources",
        clock::at(t0),
        clock::secs(setup.elapsed()),
        REPLICAS,
        receivers.len(),
        RESOURCES
    );
    let stop_faults = CancellationToken::new();
    let stop_producers = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(0));
    let ledger = Arc::new(Mutex::new(producer::Ledger::default()));
    let limiter = tokio::spawn(producer::rate_limiter(
        permits.clone(),
        args.tps,
        stop_producers.clone(),
    ));
    let resources = Arc::new(resources);
    let mut producers = Vec::new();
    for id in 0..args.producers.max(1) {
        producers.push(tokio::spawn(producer::run(producer::ProducerConfig {
            id,
            db_url: db_url.clone(),
            resources: resources.clone(),
            seed: rng.random(),
            permits: permits.clone(),
            ledger: ledger.clone(),
            stop: stop_producers.clone(),
        })));
    }
    let mut flappers = Vec::new();
    for rx in &receivers {
        flappers.push(tokio::spawn(receiver::flap(
            rx.clone(),
            rng.random(),
            stop_faults.clone(),
        )));
    }
    let stop_monitor = CancellationToken::new();
    let monitor = tokio::spawn(monitor::run(db_url.clone(), stop_monitor.clone()));
    let timeline = faults::timeline(&mut rng, t0, chaos, replicas.len());
    let director = tokio::spawn(faults::direct(
        timeline,
        replicas,
        pg.clone(),
        db_url.clone(),
        stop_faults.clone(),
    ));

    tokio::time::sleep_until(
        tokio::time::Instant::now() + (t0 + chaos).saturating_sub(clock::now()),
    )
    .await;
    println!(
        "{} faults stop; producers finish their transactions",
        clock::at(clock::now())
    );
    stop_faults.cancel();
    stop_producers.cancel();
    for f in flappers {
        let _ = f.await;
    }
    let (mut replicas, faults) = director.await.context("fault director panicked")??;
    for p in producers {
        if tokio::time::timeout(Duration::from_secs(20), p)
            .await
            .is_err()
        {
            eprintln!("a producer did not finish its transaction within 20 s");
        }
    }
    let _ = limiter.await;

    // Drain: nothing left to route or deliver; then no lease may stay expired.
    let drain_start = clock::now();
    println!(
        "{} draining (at most {})",
        clock::at(drain_start),
        clock::secs(drain_limit)
    );
    let checker = outboxd::db::connect(&db_url).await?;
    let mut drained = false;
    let mut last = (0, 0, 0);
    while clock::now() - drain_start < drain_limit {
        let row = checker
            .query_one(
                "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL),
                        (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending'),
                        (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering')",
                &[],
            )
            .await?;
        last = (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
        );
        if last == (0, 0, 0) {
            drained = true;
            break;
        }
        // Replicas must stay up during the drain, too.
        replicas.restart_exited(RESPAWN_GAP)?;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain_time = clock::now() - drain_start;
    stop_monitor.cancel();
    let samples = monitor.await.unwrap_or_default();
    // Leases of anything a replica still held must be rescued: wait one lease, look again.
    tokio::time::sleep(LEASE + Duration::from_millis(1500)).await;
    let row = checker
        .query_one(
            "SELECT (SELECT count(*) FROM outbox.events WHERE routed_at IS NULL),
                    (SELECT count(*) FROM outbox.deliveries WHERE state = 'pending'),
                    (SELECT count(*) FROM outbox.deliveries WHERE state = 'delivering'),
                    (SELECT count(*) FROM outbox.deliveries
                      WHERE state = 'delivering' AND lease_until < now() - interval '1 second')",
            &[],
        )
        .await?;
    let drain = check::Drain {
        drained,
        took: drain_time,
        left_at_deadline: last,
        unrouted: row.get(0),
        pending: row.get(1),
        delivering: row.get(2),
        expired_leases: row.get(3),
    };

    // Every replica stops gracefully at the end too: one more SIGTERM check each.
    replicas.restart_exited(Duration::ZERO)?;
    for i in 0..replicas.len() {
        replicas.wait_started(i, Duration::from_secs(10)).await;
    }
    for i in 0..replicas.len() {
        replicas
            .term(i, SHUTDOWN_GRACE + Duration::from_secs(10))
            .await;
    }

    let ledger = std::mem::take(&mut *lock(&ledger));
    let data = RunData {
        seed,
        chaos,
        fsync,
        tps: args.tps,
        receivers,
        endpoint_ids,
        gets_misc,
        ledger,
        faults,
        exits: replicas.exits.clone(),
        spawned: replicas.spawned,
        drain,
        samples,
        workdir: workdir.clone(),
    };
    let outcome = check::check(&checker, &data).await?;
    stop_receivers.cancel();
    println!("{}", outcome.report);
    let pass = outcome.pass;
    if pass && !args.keep {
        let _ = std::fs::remove_dir_all(&workdir);
    } else {
        // The cluster's directory goes with it: keep its log next to the replicas'.
        let _ = std::fs::copy(lock(&pg).log_path(), workdir.join("postgres.log"));
        println!("replica and PostgreSQL logs kept in {}", workdir.display());
    }
    drop(pg);
    println!("{}", outcome.final_line);
    Ok(pass)
}

fn outboxd_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (bin, about) = testkit::outboxd_binary(explicit).map_err(anyhow::Error::msg)?;
    println!("outboxd binary: {about}");
    Ok(bin)
}
