//! The database as production runs it (issue 14): TLS with a certificate authority of its own,
//! PgBouncer in both pool modes, the least-privilege roles of `sql/roles.sql`, a database
//! that comes up after outboxd, and errors that say what PostgreSQL said. Real PostgreSQL,
//! real PgBouncer, real `outboxd` processes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use outboxd::embedded_pg::{EmbeddedPostgres, Options};
use testkit::pgbouncer::{PgBouncer, PoolMode};
use testkit::tls::{CERT_USER, Certs};
use testkit::*;

use crate::OUTBOXD;
use crate::engine::{order_violations, wait_all_finished};
use crate::support::{add_endpoint, scalar_i64};

const ROLES_SQL: &str = include_str!("../../sql/roles.sql");

/// Environment of a test replica: loopback receivers, quick polling and retries.
fn replica_env(listen_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("OUTBOXD_LISTEN", format!("127.0.0.1:{listen_port}")),
        ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8".into()),
        ("OUTBOXD_POLL_INTERVAL", "100ms".into()),
        ("OUTBOXD_RETRY_SCHEDULE", "100ms,200ms".into()),
        ("OUTBOXD_RETRY_JITTER", "0".into()),
    ]
}

fn run(url: &str, env: &[(&'static str, String)]) -> Sidecar {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Sidecar::run(OUTBOXD, url, &env)
}

/// `GET http://127.0.0.1:<port><path>`: (status, body), or `None` when nothing answers.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let resp = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.unwrap_or_default()))
}

/// Polls `/readyz` until it answers 200; panics with the sidecar's log after `deadline`.
async fn wait_ready(s: &mut Sidecar, port: u16, deadline: Duration) {
    let end = Instant::now() + deadline;
    loop {
        if let Some((200, _)) = http_get(port, "/readyz").await {
            return;
        }
        assert!(s.is_running(), "outboxd exited:\n{}", s.log());
        assert!(
            Instant::now() < end,
            "not ready after {deadline:?}: {:?}\n{}",
            http_get(port, "/readyz").await,
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `outboxd migrate` `n` times at once against `url`; each must exit 0.
async fn migrate_concurrently(url: &str, n: usize) {
    let mut runs: Vec<Sidecar> = (0..n)
        .map(|_| Sidecar::spawn(OUTBOXD, url, &[], &["migrate"]))
        .collect();
    for s in &mut runs {
        let status = s
            .wait_exit(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("migrate still running:\n{}", s.log()));
        assert_eq!(status.code(), Some(0), "{}", s.log());
        assert!(s.log().contains("migrations applied"), "{}", s.log());
    }
}

/// A new, empty (not migrated) database on the server of `db`; its URL.
async fn bare_db(db: &TestDb) -> String {
    let name = format!("{}_bare", db.name);
    db.client()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    db.url
        .replace(&format!("/{}", db.name), &format!("/{name}"))
}

async fn own_cluster(opts: Options) -> EmbeddedPostgres {
    tokio::task::spawn_blocking(move || EmbeddedPostgres::start(opts))
        .await
        .expect("spawn_blocking")
        .expect("a PostgreSQL of its own")
}

// ---------------------------------------------------------------------------------------------
// TLS

fn tls_url(pg: &EmbeddedPostgres, host: &str, user: &str, params: &str) -> String {
    format!(
        "postgres://{user}@{host}:{}/postgres?hostaddr=127.0.0.1&{params}",
        pg.port()
    )
}

async fn is_encrypted(c: &tokio_postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .expect("pg_stat_ssl")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_connects_and_verify_full_refuses_a_wrong_host_name_clearly() {
    let certs = Certs::new();
    let pg = {
        let certs = &certs;
        tokio::task::block_in_place(|| certs.postgres())
    };
    let ca = certs.ca().display().to_string();
    let (cert, key) = certs.client();

    // require: encrypted, nothing checked. The default (prefer) encrypts when offered.
    for params in ["sslmode=require", "connect_timeout=5"] {
        let c = outboxd::connect(&tls_url(&pg, "127.0.0.1", "postgres", params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(is_encrypted(&c).await, "{params}");
    }
    // verify-full against the names the certificate carries.
    for host in ["127.0.0.1", "localhost"] {
        let url = tls_url(
            &pg,
            host,
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        );
        let c = outboxd::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(is_encrypted(&c).await);
    }
    // verify-full, another name: refused, saying so.
    let wrong = tls_url(
        &pg,
        "db.example",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = outboxd::connect(&wrong).await.unwrap_err().to_string();
    assert!(
        err.contains("sslmode=verify-full")
            && err.contains("not valid for the host name \"db.example\""),
        "{err}"
    );
    // verify-ca checks the chain only.
    let ca_only = tls_url(
        &pg,
        "db.example",
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    outboxd::connect(&ca_only).await.expect("verify-ca");
    // A certificate authority that did not sign the server's certificate.
    let other = Certs::new();
    let err = outboxd::connect(&tls_url(
        &pg,
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={}", other.ca().display()),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("certificate was refused"), "{err}");
    // Plaintext: PostgreSQL's own refusal, with its SQLSTATE.
    let err = outboxd::connect(&tls_url(&pg, "127.0.0.1", "postgres", "sslmode=disable"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("28000") && err.contains("no encryption"),
        "{err}"
    );
    // Client certificates: the role that must present one.
    let admin = outboxd::connect(&tls_url(&pg, "127.0.0.1", "postgres", "sslmode=require"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {CERT_USER} LOGIN"))
        .await
        .unwrap();
    let with_cert = format!(
        "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        cert.display(),
        key.display()
    );
    let c = outboxd::connect(&tls_url(&pg, "localhost", CERT_USER, &with_cert))
        .await
        .expect("client certificate accepted");
    assert!(is_encrypted(&c).await);
    let err = outboxd::connect(&tls_url(&pg, "localhost", CERT_USER, "sslmode=require"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");

    // `outboxd migrate` fails fast with the same message.
    let mut m = Sidecar::spawn(OUTBOXD, &wrong, &[], &["migrate"]);
    let status = m.wait_exit(Duration::from_secs(20)).await.expect("exits");
    assert_eq!(status.code(), Some(1), "{}", m.log());
    assert!(m.log().contains("db.example"), "{}", m.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_a_replica_opens_is_encrypted_and_verified() {
    let certs = Certs::new();
    let pg = {
        let certs = &certs;
        tokio::task::block_in_place(|| certs.postgres())
    };
    let url = tls_url(
        &pg,
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={}", certs.ca().display()),
    );
    let c = outboxd::connect(&url).await.unwrap();
    let rx = Receiver::ok(TEST_SECRET).await;
    // The replica migrates (one connection), then runs (the pool, LISTEN).
    let port = free_port();
    let mut env = replica_env(port);
    env.push(("OUTBOXD_MIGRATE", "true".into()));
    let mut s = run(&url, &env);
    wait_ready(&mut s, port, Duration::from_secs(30)).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    c.batch_execute(
        "INSERT INTO outbox.events (event_type, payload)
         SELECT 'tls.check', jsonb_build_object('n', g) FROM generate_series(1, 20) g",
    )
    .await
    .unwrap();
    assert!(rx.wait_for_count(20, Duration::from_secs(20)).await);
    // Plaintext is refused by pg_hba.conf, so every connection that exists is encrypted;
    // this shows the pool's and the LISTEN connection among them.
    let rows = c
        .query(
            "SELECT a.query, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.get::<_, bool>(1)));
    assert!(
        rows.iter()
            .any(|r| r.get::<_, String>(0).starts_with("LISTEN")),
        "no LISTEN connection"
    );
    assert!(!s.log().contains("not encrypted"), "{}", s.log());
}

// ---------------------------------------------------------------------------------------------
// Poolers

/// Through PgBouncer in `mode`: three `outboxd migrate` at once on a new database, then two
/// replicas with `OUTBOXD_POOLER=<mode>` deliver 1 000 events of 10 resources in order.
async fn migrate_run_and_deliver_through_pgbouncer(mode: PoolMode) {
    let db = fresh_db().await;
    let direct = bare_db(&db).await;
    let bouncer = tokio::task::block_in_place(|| PgBouncer::start(&direct, mode, &[]));
    let url = bouncer.through(&direct);
    migrate_concurrently(&url, 3).await;

    let c = outboxd::connect(&direct).await.unwrap();
    outboxd::check_schema(&c).await.expect("migrated");
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    c.batch_execute("SELECT outbox.add_source('hook', 'none')")
        .await
        .unwrap();
    let mut replicas = Vec::new();
    let mut inbound = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        let mut env = replica_env(port);
        env.push(("OUTBOXD_POOLER", mode.as_str().into()));
        let inbound_port = free_port();
        env.push((
            "OUTBOXD_INBOUND_LISTEN",
            format!("127.0.0.1:{inbound_port}"),
        ));
        let mut s = run(&url, &env);
        wait_ready(&mut s, port, Duration::from_secs(30)).await;
        replicas.push((s, port));
        inbound.push(inbound_port);
    }
    // The application publishes through the pooler too (simple queries pass any mode).
    let app = outboxd::connect(&url).await.unwrap();
    app.batch_execute(
        "INSERT INTO outbox.events (event_type, resource_key, payload)
         SELECT 'tick', 'k' || (g % 10), jsonb_build_object('r', 'k' || (g % 10), 'seq', g / 10)
           FROM generate_series(0, 999) g",
    )
    .await
    .unwrap();
    let delivered = rx
        .wait_for(Duration::from_secs(60), |reqs| {
            reqs.iter().filter(|r| r.is_2xx()).count() >= 1000
        })
        .await;
    assert!(delivered, "{} of 1000 delivered", rx.count());
    wait_all_finished(&c, Duration::from_secs(30)).await;
    assert_eq!(rx.successes_by_id().len(), 1000);
    assert_eq!(order_violations(&rx.requests()), 0);
    // The background services' statements pass the pooler too: the lease rescue (first run
    // at start) once sent a `SET LOCAL`, which a transaction-mode pooler's statements cannot
    // carry (every one is described with a SQL PREPARE), and failed on every round.
    for (s, _) in &replicas {
        let log = s.log();
        for failed in ["lease rescue failed", "retention failed"] {
            assert!(!log.contains(failed), "{failed}:\n{log}");
        }
    }
    // Inbound requests are stored (group commit) and relayed through the pooler too.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..20 {
        let port = inbound[i % inbound.len()];
        let resp = http
            .post(format!("http://127.0.0.1:{port}/in/hook"))
            .body(format!("n={i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    let relayed = rx
        .wait_for(Duration::from_secs(30), |reqs| {
            reqs.iter().filter(|r| r.is_2xx()).count() >= 1020
        })
        .await;
    assert!(relayed, "{} of 1020 delivered", rx.count());
    for (s, port) in &mut replicas {
        assert_eq!(
            http_get(*port, "/readyz").await.map(|r| r.0),
            Some(200),
            "{}",
            s.log()
        );
        let log = s.log();
        assert!(!log.contains("prepared statement"), "{log}");
        assert!(!log.contains("unsupported startup parameter"), "{log}");
        if mode == PoolMode::Transaction {
            assert!(log.contains("LISTEN/NOTIFY does not pass"), "{log}");
        }
        s.sigterm();
        let status = s.wait_exit(Duration::from_secs(15)).await;
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", s.log());
    }
    assert!(!bouncer.log().contains("prepared statement"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_in_transaction_mode_migrate_run_and_deliver_in_order() {
    migrate_run_and_deliver_through_pgbouncer(PoolMode::Transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_in_session_mode_migrate_run_and_deliver_in_order() {
    migrate_run_and_deliver_through_pgbouncer(PoolMode::Session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_transaction_pooler_a_direct_listen_connection_brings_wake_ups_back() {
    let db = fresh_db().await;
    let bouncer =
        tokio::task::block_in_place(|| PgBouncer::start(&db.url, PoolMode::Transaction, &[]));
    let c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let port = free_port();
    let mut env = replica_env(port);
    env.extend([
        ("OUTBOXD_POOLER", "transaction".into()),
        ("OUTBOXD_LISTEN_DATABASE_URL", db.url.clone()),
        // Polling alone would take up to this long.
        ("OUTBOXD_POLL_INTERVAL", "30s".into()),
    ]);
    let mut s = run(&bouncer.through(&db.url), &env);
    wait_ready(&mut s, port, Duration::from_secs(30)).await;
    assert!(
        !s.log().contains("LISTEN/NOTIFY does not pass"),
        "{}",
        s.log()
    );
    let t0 = Instant::now();
    c.batch_execute("SELECT outbox.publish('woken', '{}'::jsonb)")
        .await
        .unwrap();
    assert!(
        rx.wait_for_count(1, Duration::from_secs(10)).await,
        "{}",
        s.log()
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_migrates_on_a_direct_connection() {
    let db = fresh_db().await;
    let url = bare_db(&db).await;
    migrate_concurrently(&url, 3).await;
    let c = outboxd::connect(&url).await.unwrap();
    outboxd::check_schema(&c).await.expect("migrated once");
    let once = scalar_i64(
        &c,
        "SELECT count(*) - count(DISTINCT version) FROM outbox.schema_history",
    )
    .await;
    assert_eq!(once, 0, "a migration was applied twice");
    let latest = scalar_i64(&c, "SELECT max(version)::int8 FROM outbox.schema_history").await;
    assert_eq!(latest, i64::from(outboxd::latest_migration()));
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .count();
    let applied = scalar_i64(&c, "SELECT count(*) FROM outbox.schema_history").await;
    assert_eq!(applied, files as i64, "every migration file applied");
}

/// A rolling upgrade as the chart runs it: the migration commits first, and the replicas of
/// the previous version go on for a while on the newer schema. They must stay ready and keep
/// delivering while the schema says it supports them (V21's `outbox.schema_compatibility`),
/// and say clearly when it does not. The newer schema is this one plus a migration from the
/// future, entered in the history the way refinery would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_replica_stays_ready_on_a_newer_schema_that_supports_it_and_not_on_one_that_does_not()
 {
    let db = fresh_db().await;
    let c = db.client().await;
    let known = outboxd::latest_migration();
    let future = known + 1;
    c.execute(
        "INSERT INTO outbox.schema_history VALUES ($1, 'from_the_future', '2027-01-01T00:00:00Z', '0')",
        &[&future],
    )
    .await
    .unwrap();
    let newer = outboxd::check_schema(&c).await.expect("supported");
    assert_eq!(newer.database_version(), future);

    // A replica (re)started mid-rollout starts, is ready, says why, and delivers.
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    let port = free_port();
    let mut replica = run(&db.url, &replica_env(port));
    wait_ready(&mut replica, port, Duration::from_secs(30)).await;
    let (_, body) = http_get(port, "/readyz").await.unwrap();
    assert!(
        body.starts_with("ready; ")
            && body.contains(&format!(
                "schema is at migration {future}, newer than this outboxd knows ({known})"
            )),
        "{body}"
    );
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    for line in [
        format!("outboxd_schema_version{{of=\"binary\"}} {known}"),
        format!("outboxd_schema_version{{of=\"database\"}} {future}"),
        "outboxd_ready 1".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    assert!(
        replica.log().contains("finish the rollout"),
        "{}",
        replica.log()
    );
    c.batch_execute("SELECT outbox.publish('order.paid', '{\"n\": 1}', 'order-1')")
        .await
        .unwrap();
    assert!(
        rx.wait_for_count(1, Duration::from_secs(20)).await,
        "not delivered"
    );

    // `outboxd migrate` of the older binary (a rollback's hook Job, or a replica with
    // OUTBOXD_MIGRATE) applies nothing and says so; it does not fail on the unknown migration.
    let mut migrate = Sidecar::spawn(OUTBOXD, &db.url, &[], &["migrate"]);
    let status = migrate.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", migrate.log());
    assert!(
        migrate.log().contains("nothing applied"),
        "{}",
        migrate.log()
    );

    // A migration that breaks this binary raises the floor: not ready, with the reason, and
    // a new start is refused with the same words.
    c.execute(
        "UPDATE outbox.schema_compatibility SET oldest_binary = $1",
        &[&future],
    )
    .await
    .unwrap();
    let needs = format!(
        "schema is at migration {future}, which needs an outboxd that knows migration {future} or later (this one knows {known}); upgrade outboxd"
    );
    let (status, body) = http_get(port, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&needs), "{body}");
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    assert!(metrics.lines().any(|l| l == "outboxd_ready 0"), "{metrics}");
    replica.sigterm();
    replica.wait_exit(Duration::from_secs(15)).await;
    for args in [&["run"][..], &["migrate"][..]] {
        let env = replica_env(free_port());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut refused = Sidecar::spawn(OUTBOXD, &db.url, &env, args);
        let status = refused.wait_exit(Duration::from_secs(30)).await;
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(1),
            "{args:?}: {}",
            refused.log()
        );
        assert!(
            refused.log().contains(&needs),
            "{args:?}: {}",
            refused.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_an_earlier_outboxd_has_its_history_moved() {
    let db = fresh_db().await;
    let url = bare_db(&db).await;
    let c = outboxd::connect(&url).await.unwrap();
    // What outboxd 0.1 left: V1..V3 applied, refinery's history in public.
    c.batch_execute(
        "CREATE TABLE public.outboxd_schema_history (version int4 PRIMARY KEY,
           name varchar(255), applied_on varchar(255), checksum varchar(255))",
    )
    .await
    .unwrap();
    for (file, sql) in [
        ("V1__init", include_str!("../../migrations/V1__init.sql")),
        (
            "V2__dba_views",
            include_str!("../../migrations/V2__dba_views.sql"),
        ),
        (
            "V3__fair_routing",
            include_str!("../../migrations/V3__fair_routing.sql"),
        ),
    ] {
        c.batch_execute(sql).await.unwrap();
        let m = refinery::Migration::unapplied(file, sql).unwrap();
        c.execute(
            "INSERT INTO public.outboxd_schema_history VALUES ($1, $2, '2026-11-01T00:00:00Z', $3)",
            &[&m.version(), &m.name(), &m.checksum().to_string()],
        )
        .await
        .unwrap();
    }
    // Before: this binary says the database needs migrating.
    let err = outboxd::check_schema(&c).await.unwrap_err().to_string();
    assert!(err.contains("outboxd migrate"), "{err}");

    migrate_concurrently(&url, 2).await;
    outboxd::check_schema(&c)
        .await
        .expect("at this binary's version");
    let (public, moved): (i64, i64) = {
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM pg_tables WHERE tablename = 'outboxd_schema_history'),
                        (SELECT count(*) FROM outbox.schema_history WHERE version <= 3)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (public, moved),
        (0, 3),
        "the old rows moved, the old table gone"
    );
}

// ---------------------------------------------------------------------------------------------
// Roles

/// Connects as `user` to database `db` of `pg`.
async fn connect_as(pg: &EmbeddedPostgres, user: &str, db: &str) -> tokio_postgres::Client {
    outboxd::connect(&user_url(pg, user, db))
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn user_url(pg: &EmbeddedPostgres, user: &str, db: &str) -> String {
    format!("postgres://{user}@127.0.0.1:{}/{db}", pg.port())
}

fn sqlstate(e: &tokio_postgres::Error) -> &str {
    e.code().map_or("", |c| c.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_can_do_its_work_and_no_more_and_a_missing_grant_is_named() {
    // Roles are cluster-wide: a cluster of its own, not the shared one.
    let pg = own_cluster(Options::default()).await;
    let admin = connect_as(&pg, "postgres", "postgres").await;
    admin.batch_execute("CREATE DATABASE app").await.unwrap();
    let su = connect_as(&pg, "postgres", "app").await;
    // Idempotent: twice before migrating, once after.
    su.batch_execute(ROLES_SQL).await.expect("roles.sql");
    su.batch_execute(ROLES_SQL).await.expect("roles.sql again");
    su.batch_execute(
        "CREATE ROLE migrator LOGIN IN ROLE outboxd_owner;
         CREATE ROLE runtime LOGIN IN ROLE outboxd_runtime;
         CREATE ROLE app LOGIN IN ROLE outboxd_publisher;
         CREATE ROLE dba LOGIN IN ROLE outboxd_reader;",
    )
    .await
    .unwrap();

    // The owner migrates; what it creates belongs to outboxd_owner, whoever logs in.
    migrate_concurrently(&user_url(&pg, "migrator", "app"), 1).await;
    su.batch_execute(ROLES_SQL)
        .await
        .expect("roles.sql after migrating");
    let owners: Vec<String> = su
        .query(
            "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'outbox'
             UNION SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'outbox'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, ["outboxd_owner"]);

    // The runtime role runs the engine and the admin API.
    let rx = Receiver::ok(TEST_SECRET).await;
    let port = free_port();
    let mut env = replica_env(port);
    env.push(("OUTBOXD_LOG_FORMAT", "json".into()));
    let inbound_port = free_port();
    env.push((
        "OUTBOXD_INBOUND_LISTEN",
        format!("127.0.0.1:{inbound_port}"),
    ));
    let runtime_url = user_url(&pg, "runtime", "app");
    let mut s = run(&runtime_url, &env);
    wait_ready(&mut s, port, Duration::from_secs(30)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let created = http
        .post(format!("http://127.0.0.1:{port}/v1/endpoints"))
        .json(&serde_json::json!({
            "url": rx.url(), "event_types": ["*"], "secret": TEST_SECRET
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());

    // The publisher inserts and publishes, and reads no payload.
    let app = connect_as(&pg, "app", "app").await;
    let row = app
        .query_one(
            "INSERT INTO outbox.events (event_type, resource_key, payload)
             VALUES ('order.paid', 'order:1', '{\"secret\": 1}') RETURNING id, event_id",
            &[],
        )
        .await
        .expect("publisher INSERTs");
    let _: (i64, String) = (row.get(0), row.get(1));
    app.query_one(
        "SELECT outbox.publish('order.paid', '{\"n\": 2}'::jsonb, resource_key => 'order:1')",
        &[],
    )
    .await
    .expect("publisher calls outbox.publish");
    let err = app
        .query("SELECT payload FROM outbox.events", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");
    assert!(rx.wait_for_count(2, Duration::from_secs(20)).await);

    // Inbound webhooks as the runtime role: a source over the API, a request stored and
    // relayed, a replay.
    let created = http
        .post(format!("http://127.0.0.1:{port}/v1/sources"))
        .json(&serde_json::json!({"name": "hook", "verify": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let stored = http
        .post(format!("http://127.0.0.1:{inbound_port}/in/hook"))
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200, "{}", stored.text().await.unwrap());
    let replayed = http
        .post(format!("http://127.0.0.1:{port}/v1/sources/hook/replay"))
        .json(&serde_json::json!({"since": "2000-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200, "{}", replayed.text().await.unwrap());
    assert!(rx.wait_for_count(4, Duration::from_secs(20)).await);

    // The reader: the cookbook's questions; no payloads, no secrets.
    let dba = connect_as(&pg, "dba", "app").await;
    for file in [
        "lag.sql",
        "endpoint_health.sql",
        "failures_last_hour.sql",
        "dead_deliveries.sql",
        "event_history.sql",
    ] {
        let sql = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("sql/cookbook")
                .join(file),
        )
        .unwrap();
        dba.batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{file} as outboxd_reader: {e}"));
    }
    for forbidden in [
        "SELECT payload FROM outbox.events",
        "SELECT secrets FROM outbox.endpoints",
        "SELECT secrets FROM outbox.sources",
        "SELECT body FROM outbox.inbound_requests",
        "SELECT headers FROM outbox.inbound_requests",
        "SELECT query FROM outbox.inbound_requests",
        "SELECT * FROM outbox.inbound_log",
    ] {
        let err = dba.query(forbidden, &[]).await.unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{forbidden}: {err:?}");
    }

    // Outcomes that cannot be written: not ready, saying which privilege; nothing new is
    // sent meanwhile; nothing is sent twice once the grant is back.
    su.batch_execute("REVOKE INSERT ON outbox.attempts FROM outboxd_runtime")
        .await
        .unwrap();
    app.batch_execute("SELECT outbox.publish('order.paid', '{\"n\": 3}'::jsonb)")
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let why = loop {
        match http_get(port, "/readyz").await {
            Some((503, body)) => break body,
            _ if Instant::now() > end => panic!("still ready:\n{}", s.log()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        why.contains("recorder failing") && why.contains("INSERT on table outbox.attempts"),
        "{why}"
    );
    let sent = rx.count();
    app.batch_execute("SELECT outbox.publish('order.paid', '{\"n\": 4}'::jsonb)")
        .await
        .unwrap();
    // An observation window, not a synchronisation: nothing may arrive during it.
    assert!(
        !rx.wait_for_count(sent + 1, Duration::from_secs(1)).await,
        "a delivery was started while outcomes could not be written"
    );
    su.batch_execute("SELECT outbox.grant_roles()")
        .await
        .unwrap();
    wait_ready(&mut s, port, Duration::from_secs(20)).await;
    let c = connect_as(&pg, "postgres", "app").await;
    wait_all_finished(&c, Duration::from_secs(20)).await;
    assert!(rx.successes_by_id().values().all(|&n| n == 1), "sent twice");
    assert_eq!(rx.successes_by_id().len(), 6);
    // The JSON log carried PostgreSQL's words.
    let log = s.log();
    assert!(
        log.lines().any(|l| l.starts_with('{')
            && l.contains("42501")
            && l.contains("permission denied for table attempts")),
        "{log}"
    );
    s.sigterm();
    s.wait_exit(Duration::from_secs(15)).await;

    // A missing grant at start-up: refused, every missing privilege named.
    su.batch_execute(
        "REVOKE DELETE ON outbox.attempts FROM outboxd_runtime;
         REVOKE EXECUTE ON FUNCTION outbox.retry_dead(bigint, bigint) FROM outboxd_runtime, PUBLIC;",
    )
    .await
    .unwrap();
    let mut s = run(&runtime_url, &replica_env(free_port()));
    let status = s.wait_exit(Duration::from_secs(20)).await.expect("refuses");
    assert_eq!(status.code(), Some(1), "{}", s.log());
    let log = s.log();
    assert!(
        log.contains("\"runtime\" lacks privileges")
            && log.contains("DELETE on table outbox.attempts")
            && log.contains("EXECUTE on function outbox.retry_dead"),
        "{log}"
    );
    // The example: SELECT on the configuration tables only.
    su.batch_execute(
        "CREATE ROLE reader_only LOGIN;
         GRANT USAGE ON SCHEMA outbox TO reader_only;
         GRANT SELECT ON outbox.endpoints, outbox.subscriptions, outbox.config_version,
                         outbox.schema_history TO reader_only;",
    )
    .await
    .unwrap();
    let mut s = run(
        &user_url(&pg, "reader_only", "app"),
        &replica_env(free_port()),
    );
    let status = s.wait_exit(Duration::from_secs(20)).await.expect("refuses");
    assert_eq!(status.code(), Some(1), "{}", s.log());
    assert!(
        s.log().contains("UPDATE on table outbox.deliveries"),
        "{}",
        s.log()
    );
}

/// The privileges the outboxd_* roles hold on the `outbox` schema, one line per
/// `role kind object privilege [column]` (views count as tables).
const ROLE_PRIVILEGES: &str = "
    SELECT r.rolname::text || ' ' || kind || ' ' || object || ' ' || privilege
           || coalesce(' ' || col, '')
      FROM (SELECT a.grantee, CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
                   c.oid::regclass::text, a.privilege_type, NULL::text
              FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.relnamespace = 'outbox'::regnamespace
            UNION ALL
            SELECT a.grantee, 'table', c.oid::regclass::text, a.privilege_type, att.attname::text
              FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid,
                   aclexplode(att.attacl) a
             WHERE c.relnamespace = 'outbox'::regnamespace
            UNION ALL
            SELECT a.grantee, 'function', p.oid::regprocedure::text, a.privilege_type, NULL
              FROM pg_proc p, aclexplode(p.proacl) a
             WHERE p.pronamespace = 'outbox'::regnamespace
            UNION ALL
            SELECT a.grantee, 'schema', n.nspname::text, a.privilege_type, NULL
              FROM pg_namespace n, aclexplode(n.nspacl) a
             WHERE n.nspname = 'outbox') AS p(grantee, kind, object, privilege, col)
      JOIN pg_roles r ON r.oid = p.grantee
     WHERE r.rolname IN ('outboxd_runtime', 'outboxd_publisher', 'outboxd_reader')";

async fn role_privileges(c: &tokio_postgres::Client, sql: &str) -> BTreeSet<String> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_as_rows_grant_exactly_what_the_last_hand_written_grant_roles_did() {
    // Roles are cluster-wide: a cluster of its own.
    let pg = own_cluster(Options::default()).await;
    let admin = connect_as(&pg, "postgres", "postgres").await;
    admin.batch_execute("CREATE DATABASE app").await.unwrap();
    let su = connect_as(&pg, "postgres", "app").await;
    su.batch_execute(ROLES_SQL).await.expect("roles.sql");
    migrate_concurrently(&user_url(&pg, "postgres", "app"), 1).await;

    // What outbox.role_grants granted, less the rows later migrations added (V18 made the
    // table and filled it: the rows with the smallest `added_by`).
    let mut from_rows = role_privileges(&su, ROLE_PRIVILEGES).await;
    let later = role_privileges(
        &su,
        "SELECT g.role || ' ' || g.object_kind || ' '
                || CASE g.object_kind WHEN 'schema' THEN g.object_name
                                      WHEN 'function' THEN g.object_name::regprocedure::text
                                      ELSE g.object_name::regclass::text END
                || ' ' || g.privilege || coalesce(' ' || c, '')
           FROM outbox.role_grants g LEFT JOIN LATERAL unnest(g.columns) c ON true
          WHERE g.added_by > (SELECT min(added_by) FROM outbox.role_grants)",
    )
    .await;
    from_rows.retain(|p| !later.contains(p));
    assert!(from_rows.len() > 100, "{from_rows:?}");

    // V17's grant_roles(), the last one written by hand, on a schema with no grants.
    let v17 = include_str!("../../migrations/V17__endpoint_client_certificates.sql");
    let start = v17
        .find("CREATE OR REPLACE FUNCTION outbox.grant_roles()")
        .expect("V17 replaces grant_roles()");
    let body_end = start + v17[start..].match_indices("$$").nth(1).expect("$$ … $$").0;
    let v17_function =
        v17[start..body_end + 2].replace("outbox.grant_roles()", "pg_temp.grant_roles_v17()");
    su.batch_execute(
        "REVOKE ALL ON ALL TABLES IN SCHEMA outbox
                FROM outboxd_runtime, outboxd_publisher, outboxd_reader;
         REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox
                FROM outboxd_runtime, outboxd_publisher, outboxd_reader;
         REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox
                FROM outboxd_runtime, outboxd_publisher, outboxd_reader;
         REVOKE ALL ON SCHEMA outbox FROM outboxd_runtime, outboxd_publisher, outboxd_reader;",
    )
    .await
    .unwrap();
    assert!(role_privileges(&su, ROLE_PRIVILEGES).await.is_empty());
    su.batch_execute(&v17_function)
        .await
        .expect("V17's grant_roles");
    su.batch_execute("SELECT pg_temp.grant_roles_v17()")
        .await
        .expect("V17's grant_roles runs on the latest schema");
    let from_v17 = role_privileges(&su, ROLE_PRIVILEGES).await;
    let only_rows: Vec<_> = from_rows.difference(&from_v17).collect();
    let only_v17: Vec<_> = from_v17.difference(&from_rows).collect();
    assert!(
        only_rows.is_empty() && only_v17.is_empty(),
        "granted only by the rows: {only_rows:?}\ngranted only by V17: {only_v17:?}"
    );

    // What `outboxd run` checks is what outboxd_runtime is granted: nothing missing for it,
    // every runtime row missing for a role that has only USAGE on the schema.
    su.batch_execute("SELECT outbox.grant_roles()")
        .await
        .unwrap();
    let missing = include_str!("../../sql/engine/missing_privileges.sql");
    su.batch_execute("SET ROLE outboxd_runtime").await.unwrap();
    assert_eq!(su.query(missing, &[]).await.unwrap().len(), 0);
    su.batch_execute(
        "RESET ROLE; CREATE ROLE bare; GRANT USAGE ON SCHEMA outbox TO bare; SET ROLE bare",
    )
    .await
    .unwrap();
    let rows = su.query(missing, &[]).await.unwrap();
    su.batch_execute("RESET ROLE").await.unwrap();
    let runtime_rows = scalar_i64(
        &su,
        "SELECT count(*) FROM outbox.role_grants
          WHERE role = 'outboxd_runtime' AND object_kind IN ('table', 'sequence')",
    )
    .await;
    // (Functions: PUBLIC may execute them unless a migration revoked it.)
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| r.get::<_, String>("kind") != "function")
        .collect();
    assert_eq!(rows.len() as i64, runtime_rows);
    assert!(rows.iter().all(|r| r.get::<_, bool>("object_exists")));
}

// ---------------------------------------------------------------------------------------------
// Configuration in bulk

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_thousands_of_endpoints_in_one_transaction_takes_linear_time_and_one_reload() {
    let db = fresh_db().await;
    let mut c = db.client().await;
    let rx = Receiver::ok(TEST_SECRET).await;
    let engine = crate::engine::start(&db, &[]).await;
    let version = scalar_i64(&c, "SELECT version FROM outbox.config_version").await;

    // 8 000 endpoints, subscribed to a type never published, and a receiver's endpoint
    // before and after them; the cost per call at the start and at the end is the cheapest
    // of three probes of 250 calls (the machine may be busy with other tests).
    let tx = c.transaction().await.unwrap();
    let add = |from: i32, n: i32| {
        let tx = &tx;
        async move {
            let t0 = Instant::now();
            tx.query_one(
                "SELECT count(outbox.add_endpoint('http://127.0.0.1:9/bulk/' || i, '{bulk.never}',
                                                  secret => $3))
                   FROM generate_series($1::int, $1::int + $2::int - 1) i",
                &[&from, &n, &TEST_SECRET],
            )
            .await
            .expect("add_endpoint in bulk");
            t0.elapsed()
        }
    };
    tx.execute(
        "SELECT outbox.add_endpoint($1, '{bulk.done}', secret => $2)",
        &[&rx.url_for("/first"), &TEST_SECRET],
    )
    .await
    .unwrap();
    let mut first = Duration::MAX;
    for p in 0..3 {
        first = first.min(add(p * 250, 250).await);
    }
    add(750, 6_500).await;
    let mut last = Duration::MAX;
    for p in 0..3 {
        last = last.min(add(7_250 + p * 250, 250).await);
    }
    tx.execute(
        "SELECT outbox.add_endpoint($1, '{bulk.done}', secret => $2)",
        &[&rx.url_for("/last"), &TEST_SECRET],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The version's row was updated once, not twice per call (each update walked the chain
    // of row versions the earlier ones left: O(N²) for N calls, migration V18).
    assert!(
        last.as_secs_f64() < 1.5 * first.as_secs_f64(),
        "250 calls after 7 250 took {last:?}, at the start {first:?}"
    );
    assert_eq!(
        scalar_i64(&c, "SELECT version FROM outbox.config_version").await,
        version + 1,
        "one bump for the whole transaction"
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM outbox.endpoints").await,
        8_002
    );

    // The replica reloads its catalog (NOTIFY; its timer is 30 s) and routes to both.
    crate::support::Event::new("bulk.done").publish(&c).await;
    assert!(rx.wait_for_count(2, Duration::from_secs(15)).await);
    let mut paths: Vec<String> = rx.requests().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/first", "/last"]);
    engine.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Start-up without the database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_started_before_postgres_waits_unready_and_starts_once_it_answers() {
    let pg_port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres?connect_timeout=2");
    let port = free_port();
    let mut env = replica_env(port);
    env.push(("OUTBOXD_MIGRATE", "true".into()));
    let t0 = Instant::now();
    let mut s = run(&url, &env);
    // Twenty seconds without a database (the bar; the backoff has reached its 5 s cap
    // by then): alive, not ready, saying why.
    let mut seen_unready = 0;
    while t0.elapsed() < Duration::from_secs(20) {
        assert!(s.is_running(), "{}", s.log());
        if let (Some((200, _)), Some((503, why))) = (
            http_get(port, "/healthz").await,
            http_get(port, "/readyz").await,
        ) {
            assert!(why.contains("PostgreSQL"), "{why}");
            seen_unready += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_unready > 5, "{}", s.log());
    assert!(s.log().contains("waiting for it"), "{}", s.log());

    let pg = own_cluster(Options {
        port: Some(pg_port),
        ..Options::default()
    })
    .await;
    wait_ready(&mut s, port, Duration::from_secs(30)).await;
    let c = outboxd::connect(&pg.url()).await.unwrap();
    let rx = Receiver::ok(TEST_SECRET).await;
    add_endpoint(&c, &rx.url(), &["*"], None).await;
    c.batch_execute("SELECT outbox.publish('late.start', '{}'::jsonb)")
        .await
        .unwrap();
    assert!(rx.wait_for_count(1, Duration::from_secs(10)).await);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn database_errors_say_sqlstate_message_detail_and_hint() {
    let db = fresh_db().await;
    let c = db.client().await;
    let hint = c.query("SELECT outbox.publish(42)", &[]).await.unwrap_err();
    let text = outboxd::DbError::from(hint).to_string();
    assert!(
        text.contains("42883") && text.contains("hint: No function matches"),
        "{text}"
    );
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let detail = c.query("INSERT INTO t VALUES (1)", &[]).await.unwrap_err();
    let text = outboxd::DbError::from(detail).to_string();
    assert!(
        text.contains("23505")
            && text.contains("duplicate key")
            && text.contains("detail: Key (id)=(1) already exists"),
        "{text}"
    );
}
