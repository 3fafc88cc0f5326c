//! `outboxd-chaos`: a bounded, loopback-only chaos soak of outboxd (issue 4).
//!
//! ```sh
//! cargo build --release --bin outboxd    # the soak runs this binary; it does not build it
//! export OUTBOXD_BIN=target/release/outboxd      # or pass --outboxd PATH
//! cargo run --release -p outboxd-chaos -- --quick              # CI size, ~70 s
//! cargo run --release -p outboxd-chaos -- --seconds 300        # longer soak
//! cargo run --release -p outboxd-chaos -- --quick --seed 42    # replay a schedule
//! cargo run --release -p outboxd-chaos -- --quick --pgbouncer transaction  # replicas behind PgBouncer
//! cargo run --release -p outboxd-chaos -- --quick --inbound-rps 0          # without inbound load
//! cargo run --release -p outboxd-chaos -- --quick --upgrade-from OLD      # live upgrade from OLD
//! ```
//!
//! It starts its own PostgreSQL ([`testkit::Cluster`], fsync on), three misbehaving
//! receivers ([`receiver`]), three `outboxd run` child processes ([`replicas`]) and a few
//! application-like producers ([`producer`]), and a provider posting signed requests to the
//! replicas' inbound listeners, relayed to a worker of their own ([`inbound`]); then, for the
//! chosen time, it SIGKILLs and restarts replicas, does one SIGTERM rolling restart, restarts
//! PostgreSQL twice (fast, then immediate = crash recovery) and flaps the receivers between
//! 200, 500, 429 + Retry-After, hangs, connection resets and slow answers. With
//! `--upgrade-from OLD` ([`upgrade`]), the database is migrated by the OLD binary and the
//! replicas start as OLD; the rolling restart is then the live upgrade: the new binary's
//! `outboxd migrate` on the live database while the old replicas run, then each old replica
//! SIGTERMed and replaced by a new one. Then it stops the
//! faults, lets everything drain, and checks the receivers' logs against the database
//! ([`check`]). The output ends with
//!
//! `events=<n> lost=<n> order_violations=<n> duplicates=<n> faults=<n>`
//!
//! (followed by `inbound=<n> inbound_lost=<n> inbound_order_violations=<n>
//! inbound_duplicates=<n>` with inbound load), and the exit code is non-zero when anything was
//! lost, out of order, delivered although rolled back, stuck, badly signed, when a replica
//! crashed or a SIGTERM did not exit 0, or when an inbound request was acknowledged and not
//! stored, stored twice, or not relayed exactly and in order. With `--upgrade-from`, the line
//! ends with `upgrade=V<old schema>→V<new schema>`, and the run fails when the new binary's
//! migrate failed or an old replica was not replaced by a started new one.
//!
//! [`run`] reads as the soak's story, one step per function; [`faults`] holds the schedule
//! and its director, [`drain`] the end of the run, [`check`] one module per check.

mod check;
mod clock;
mod drain;
mod faults;
mod inbound;
mod monitor;
mod producer;
mod receiver;
mod replicas;
mod upgrade;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use testkit::pgbouncer::{PgBouncer, PoolMode};
use testkit::{Cluster, PgOptions};
use tokio_util::sync::CancellationToken;

use crate::check::Verdict;
use crate::faults::Fault;
use crate::inbound::{Inbound, InboundRun, Sender};
use crate::monitor::Monitor;
use crate::producer::Producers;
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
    /// The replicas reach PostgreSQL through a PgBouncer in this pool mode (with
    /// OUTBOXD_POOLER set to match); producers and checks stay on direct connections.
    #[arg(long, value_name = "MODE", value_parser = ["session", "transaction"])]
    pgbouncer: Option<String>,
    /// New inbound requests per second (all ordering keys together) posted to the replicas'
    /// inbound listeners; 0 = no inbound load.
    #[arg(long, default_value_t = 40.0, value_name = "N")]
    inbound_rps: f64,
    /// Live upgrade from this (older) outboxd binary: it migrates the database and the
    /// replicas start as it; at the rolling restart's turn, the new binary (--outboxd)
    /// migrates the live database and replaces the old replicas one by one.
    #[arg(long, value_name = "OLD")]
    upgrade_from: Option<PathBuf>,
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
    /// With inbound load: the source, the worker and every request sent.
    pub inbound: Option<InboundRun>,
    /// `--upgrade-from` was given; and what the live upgrade did, once its turn came.
    pub upgrade_asked: bool,
    pub upgrade: Option<upgrade::Upgrade>,
    pub spawned: u32,
    pub drain: drain::Drain,
    pub samples: monitor::Samples,
    pub workdir: PathBuf,
}

/// The soak, start to verdict: set up PostgreSQL, the receivers and the replicas; run load
/// and faults; drain; stop every replica; check; report. `Ok(pass)`; `Err` = set-up failed.
async fn run(args: Args) -> anyhow::Result<bool> {
    let setup = Instant::now();
    let plan = Plan::new(&args)?;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let workdir = work_dir()?;
    let mut pg = Cluster::throwaway(PgOptions {
        fsync: plan.fsync,
        max_connections: 200,
        ..PgOptions::default()
    })
    .await?;
    let (db_url, admin, resources) =
        prepare_database(&pg, &workdir, plan.upgrade_from.as_deref()).await?;
    let endpoints = start_receivers(&admin, &mut rng).await?;
    let inbound = if args.inbound_rps > 0.0 {
        Some(Inbound::set_up(&admin, &mut rng, REPLICAS).await?)
    } else {
        None
    };
    let (_bouncer, replica_url, overrides) = pooler(args.pgbouncer.as_deref(), &db_url, &args)?;
    let env = replica_env(&replica_url, &overrides)?;
    let ports = inbound.as_ref().map_or(&[][..], |i| &i.ports[..]);
    // Time zero of every figure in the report: the replicas' start.
    clock::start();
    let first_bin = plan.upgrade_from.as_ref().unwrap_or(&plan.bin).clone();
    let replicas = start_replicas(first_bin, &workdir, env, ports).await?;
    let t0 = clock::now();
    println!(
        "{} chaos starts (setup took {}): {} replicas, {} receivers, {} resources",
        clock::at(t0),
        clock::secs(setup.elapsed()),
        REPLICAS,
        endpoints.receivers.len(),
        RESOURCES
    );
    if let Some(i) = &inbound {
        println!(
            "inbound: {} requests/s over {} ordering keys to /in/{} on ports {:?}, relayed to {}",
            args.inbound_rps,
            inbound::KEYS,
            inbound::SOURCE,
            i.ports,
            i.worker.url_for(inbound::WORKER_PATH)
        );
    }
    let load = Load {
        tps: args.tps,
        producers: args.producers,
        db_url: &db_url,
        resources: Arc::new(resources),
        inbound: inbound.as_ref().map(|i| (args.inbound_rps, i)),
    };
    let soaked = soak(
        &plan,
        t0,
        &mut rng,
        &load,
        &mut pg,
        replicas,
        &endpoints.receivers,
    )
    .await?;
    let mut replicas = soaked.replicas;
    let checker = outboxd::connect(&db_url).await?;
    let (drain, samples) =
        drain::drain(&checker, &mut replicas, plan.drain_limit, soaked.monitor).await?;
    stop_every_replica(&mut replicas).await?;
    let ledger = std::mem::take(&mut *lock(&soaked.ledger));
    let data = RunData {
        seed: plan.seed,
        chaos: plan.chaos,
        fsync: plan.fsync,
        tps: args.tps,
        receivers: endpoints.receivers,
        endpoint_ids: endpoints.ids,
        gets_misc: endpoints.gets_misc,
        ledger,
        faults: soaked.faults,
        exits: replicas.exits.clone(),
        inbound: inbound.map(|inbound| InboundRun {
            inbound,
            rps: args.inbound_rps,
            sends: soaked.sends,
        }),
        upgrade_asked: plan.upgrade_from.is_some(),
        upgrade: soaked.upgrade,
        spawned: replicas.spawned,
        drain,
        samples,
        workdir: workdir.clone(),
    };
    let outcome = check::check(&checker, &data).await?;
    // The receivers stop with it.
    drop(data);
    Ok(report(&outcome, args.keep, &workdir, pg).await)
}

/// The run's shape, from the flags.
struct Plan {
    seed: u64,
    /// How long the faults go on.
    chaos: Duration,
    /// The longest wait for the backlog to drain afterwards.
    drain_limit: Duration,
    fsync: bool,
    /// The outboxd binary the replicas run (from the live upgrade on, with `upgrade_from`).
    bin: PathBuf,
    /// `--upgrade-from`: the old binary that migrates the database and that the replicas
    /// start as.
    upgrade_from: Option<PathBuf>,
}

impl Plan {
    /// Draws the seed if none was given, prints the run's first line, and finds the binaries.
    fn new(args: &Args) -> anyhow::Result<Plan> {
        let default = if args.quick { 60 } else { 120 };
        let seed = args.seed.unwrap_or_else(|| rand::rng().random());
        let chaos = Duration::from_secs(args.seconds.unwrap_or(default));
        let fsync = !args.no_fsync;
        println!(
            "outboxd-chaos: seed {seed}, {} of faults, {} tx/s from {} producers, PostgreSQL fsync {}",
            clock::secs(chaos),
            args.tps,
            args.producers,
            if fsync { "on" } else { "off" }
        );
        Ok(Plan {
            seed,
            chaos,
            drain_limit: Duration::from_secs(args.drain_seconds.unwrap_or(default)),
            fsync,
            bin: outboxd_binary(args.outboxd.as_deref())?,
            upgrade_from: args
                .upgrade_from
                .as_deref()
                .map(upgrade::old_binary)
                .transpose()?,
        })
    }
}

fn outboxd_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let (bin, about) = testkit::outboxd_binary(explicit).map_err(anyhow::Error::msg)?;
    println!("outboxd binary: {about}");
    Ok(bin)
}

/// A fresh directory for the replicas' logs.
fn work_dir() -> anyhow::Result<PathBuf> {
    let workdir = std::env::temp_dir().join(format!(
        "outboxd-chaos.{}.{}",
        std::process::id(),
        chrono::Utc::now().format("%Y%m%dT%H%M%S")
    ));
    std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
    Ok(workdir)
}

/// A fresh migrated database on the soak's cluster (by `old_bin`'s `outboxd migrate` with
/// `--upgrade-from`), with the application's table and [`RESOURCES`] resources. Returns its
/// URL, the connection (kept for the run) and the resources' ids.
async fn prepare_database(
    pg: &Cluster,
    workdir: &Path,
    old_bin: Option<&Path>,
) -> anyhow::Result<(String, tokio_postgres::Client, Vec<String>)> {
    let db_url = match old_bin {
        None => pg.create_database("outboxd_chaos").await?.0,
        Some(old) => {
            let (db_url, _) = pg.create_empty_database("outboxd_chaos").await?;
            let took = upgrade::migrate(old, &db_url)
                .await
                .map_err(|e| anyhow::anyhow!("the old binary's outboxd migrate: {e}"))?;
            let version = upgrade::schema_version(&db_url).await;
            println!(
                "database migrated by the old binary to V{} in {}",
                version.map_or("?".into(), |v| v.to_string()),
                clock::secs(took)
            );
            db_url
        }
    };
    println!(
        "postgres: {db_url} (log {})  work dir: {}",
        postgres_log(pg).display(),
        workdir.display()
    );
    let admin = outboxd::connect(&db_url).await?;
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
    Ok((db_url, admin, resources))
}

/// The server log of the soak's own (throwaway) cluster.
fn postgres_log(pg: &Cluster) -> PathBuf {
    pg.embedded()
        .map(|e| e.log_path().to_owned())
        .unwrap_or_default()
}

/// With `--pgbouncer MODE`: a PgBouncer in front of the cluster (it outlives PostgreSQL's
/// restarts), the URL through it and `OUTBOXD_POOLER=MODE` for the replicas. Without: the
/// direct URL and the overrides as given.
fn pooler(
    mode: Option<&str>,
    db_url: &str,
    args: &Args,
) -> anyhow::Result<(Option<PgBouncer>, String, Vec<String>)> {
    let mut overrides = args.replica_env.clone();
    let Some(mode) = mode else {
        return Ok((None, db_url.to_owned(), overrides));
    };
    let pool_mode = match mode {
        "session" => PoolMode::Session,
        _ => PoolMode::Transaction,
    };
    let bouncer = tokio::task::block_in_place(|| PgBouncer::start(db_url, pool_mode, &[]));
    let url = bouncer.through(db_url);
    println!("replicas connect through PgBouncer ({mode} mode): {url}");
    overrides.insert(0, format!("OUTBOXD_POOLER={mode}"));
    Ok((Some(bouncer), url, overrides))
}

/// The receivers and their endpoints, in the same order.
struct Endpoints {
    receivers: Vec<Arc<Receiver>>,
    /// `outbox.endpoints.id`.
    ids: Vec<i64>,
    /// Subscribed to the unordered `misc.*` events too.
    gets_misc: Vec<bool>,
}

/// Receivers and their endpoints: two take every event the producers publish (`res.*` and
/// `misc.*`), one only `res.*`. None takes `inbound.*`: relayed inbound requests go to the
/// inbound worker alone ([`inbound`]), so they never enter these receivers' accounting.
async fn start_receivers(
    admin: &tokio_postgres::Client,
    rng: &mut StdRng,
) -> anyhow::Result<Endpoints> {
    let patterns: [&[&str]; 3] = [&["res.*", "misc.*"], &["res.*", "misc.*"], &["res.*"]];
    let mut endpoints = Endpoints {
        receivers: Vec::new(),
        ids: Vec::new(),
        gets_misc: patterns.iter().map(|p| p.contains(&"misc.*")).collect(),
    };
    for (i, pattern) in patterns.iter().enumerate() {
        let key: [u8; 32] = rng.random();
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let rx = Receiver::start(&format!("rx{}", i + 1), &secret, rng.random()).await;
        let types: Vec<String> = pattern.iter().map(|s| s.to_string()).collect();
        let id: i64 = admin
            .query_one(
                "SELECT outbox.add_endpoint($1, $2, NULL, $3)",
                &[&rx.url(), &types, &secret],
            )
            .await
            .context("add_endpoint")?
            .get(0);
        endpoints.ids.push(id);
        endpoints.receivers.push(rx);
    }
    Ok(endpoints)
}

/// The replicas' environment: fast retries and leases so that a minute holds many fault
/// cycles, logs at `info` whatever the caller's `RUST_LOG` (the checks read `outboxd started`
/// and the errors in them), then the `--replica-env` overrides.
fn replica_env(db_url: &str, overrides: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", db_url),
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
        ("RUST_LOG", "info"),
        ("OUTBOXD_LOG_FORMAT", "text"),
        ("NO_COLOR", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for kv in overrides {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--replica-env {kv:?}: expected KEY=VALUE"))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
        println!("replica env override: {k}={v}");
    }
    Ok(env)
}

/// Starts [`REPLICAS`] replicas and waits until each has started. With `inbound_ports` (one
/// per replica), each one's inbound listener is on its own port, the same after restarts.
async fn start_replicas(
    bin: PathBuf,
    workdir: &Path,
    env: Vec<(String, String)>,
    inbound_ports: &[u16],
) -> anyhow::Result<ReplicaSet> {
    let mut replicas = ReplicaSet::new(bin, workdir.to_path_buf(), env, REPLICAS);
    for (i, port) in inbound_ports.iter().enumerate() {
        replicas.set_env(i, "OUTBOXD_INBOUND_LISTEN", &format!("127.0.0.1:{port}"));
    }
    for i in 0..replicas.len() {
        replicas.spawn(i)?;
    }
    for i in 0..replicas.len() {
        if let Err(e) = replicas.wait_started(i, Duration::from_secs(30)).await {
            bail!("replica {} did not start: {e}", replicas.name(i));
        }
    }
    Ok(replicas)
}

/// The application's load: `producers` sessions sharing `tps` transactions per second.
struct Load<'a> {
    tps: f64,
    producers: usize,
    db_url: &'a str,
    resources: Arc<Vec<String>>,
    /// Inbound requests per second, and where they go.
    inbound: Option<(f64, &'a Inbound)>,
}

/// What the soak leaves for the drain and the checks.
struct Soaked {
    replicas: ReplicaSet,
    faults: Vec<Fault>,
    /// Still sampling: the drain stops it.
    monitor: Monitor,
    ledger: Arc<Mutex<producer::Ledger>>,
    /// Every inbound request sent (none without inbound load).
    sends: Vec<inbound::Sent>,
    /// What the live upgrade did (`--upgrade-from`, once its turn came).
    upgrade: Option<upgrade::Upgrade>,
}

/// From `t0` for `plan.chaos`: producers, the inbound sender, receivers flapping, the fault
/// director. Then the faults stop, the producers finish their transactions and the sender
/// settles the requests it has.
async fn soak(
    plan: &Plan,
    t0: Duration,
    rng: &mut StdRng,
    load: &Load<'_>,
    pg: &mut Cluster,
    replicas: ReplicaSet,
    receivers: &[Arc<Receiver>],
) -> anyhow::Result<Soaked> {
    let stop_faults = CancellationToken::new();
    let producers = Producers::start(
        load.producers,
        load.tps,
        load.db_url,
        load.resources.clone(),
        rng,
    );
    let sender = match load.inbound {
        Some((rps, i)) => Some(Sender::start(rps, i.ports.clone(), i.secret.clone(), rng)?),
        None => None,
    };
    let flappers: Vec<_> = receivers
        .iter()
        .map(|rx| {
            tokio::spawn(receiver::flap(
                rx.clone(),
                rng.random(),
                stop_faults.clone(),
            ))
        })
        .collect();
    let monitor = Monitor::start(load.db_url.to_owned());
    let timeline = faults::timeline(rng, t0, plan.chaos, replicas.len());
    // The director runs in this task, not a spawned one: it owns the replicas, whose
    // processes die with the thread that spawned them (and the kit's `wait_started` future
    // is not `Send`), and it restarts PostgreSQL, which it borrows for the while.
    let upgrade_to = plan.upgrade_from.as_ref().map(|_| plan.bin.clone());
    let director = faults::direct(
        timeline,
        replicas,
        pg,
        load.db_url,
        upgrade_to,
        stop_faults.clone(),
    );
    let time_up = async {
        tokio::time::sleep_until(
            tokio::time::Instant::now() + (t0 + plan.chaos).saturating_sub(clock::now()),
        )
        .await;
        println!(
            "{} faults stop; producers finish their transactions",
            clock::at(clock::now())
        );
        stop_faults.cancel();
        producers.stop();
        if let Some(s) = &sender {
            s.stop();
        }
    };
    let (directed, ()) = tokio::join!(director, time_up);
    for f in flappers {
        let _ = f.await;
    }
    let directed = directed?;
    let ledger = producers.finish().await;
    let sends = match sender {
        Some(s) => s.finish().await,
        None => Vec::new(),
    };
    Ok(Soaked {
        replicas: directed.replicas,
        faults: directed.faults,
        monitor,
        ledger,
        sends,
        upgrade: directed.upgrade,
    })
}

/// Every replica stops gracefully at the end too: one more SIGTERM check each.
async fn stop_every_replica(replicas: &mut ReplicaSet) -> anyhow::Result<()> {
    replicas.restart_exited(Duration::ZERO)?;
    for i in 0..replicas.len() {
        // One that exits instead of starting is recorded, and its SIGTERM below fails.
        let _ = replicas.wait_started(i, Duration::from_secs(10)).await;
    }
    for i in 0..replicas.len() {
        replicas
            .term(i, SHUTDOWN_GRACE + Duration::from_secs(10))
            .await;
    }
    Ok(())
}

/// Prints the report; keeps the work directory (with PostgreSQL's log) when the run failed or
/// `keep`; stops PostgreSQL; prints the summary line last. Whether the run passed.
async fn report(outcome: &Verdict, keep: bool, workdir: &Path, mut pg: Cluster) -> bool {
    println!("{}", outcome.report);
    if outcome.pass && !keep {
        let _ = std::fs::remove_dir_all(workdir);
    } else {
        // The cluster's directory goes with it: keep its log next to the replicas'.
        let _ = std::fs::copy(postgres_log(&pg), workdir.join("postgres.log"));
        println!("replica and PostgreSQL logs kept in {}", workdir.display());
    }
    pg.stop().await;
    println!("{}", outcome.final_line);
    outcome.pass
}
