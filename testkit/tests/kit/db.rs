//! Fresh databases are migrated and isolated; a throwaway cluster takes settings, restarts,
//! creates and drops databases, and accounts for its CPU.

use std::time::Instant;

use testkit::{Cluster, PgOptions, Restart, fresh_db};

async fn events(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM outbox.events", &[])
        .await
        .expect("outbox.events exists")
        .get(0)
}

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
    assert_eq!((events(&ca).await, events(&cb).await), (0, 0));
    ca.execute(
        "INSERT INTO outbox.events (event_type, resource_key, payload) \
         VALUES ('order.paid', 'order:1', '{\"id\": 1}'::jsonb)",
        &[],
    )
    .await
    .expect("insert into a");
    assert_eq!((events(&ca).await, events(&cb).await), (1, 0));

    // Migrated to the version this binary expects.
    outboxd::check_schema(&ca).await.expect("a is migrated");
    outboxd::check_schema(&cb).await.expect("b is migrated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_cluster_takes_settings_restarts_and_makes_migrated_databases() {
    let mut cluster = Cluster::throwaway(PgOptions {
        settings: vec![("work_mem".into(), "7MB".into())],
        ..PgOptions::default()
    })
    .await
    .expect("a throwaway cluster");
    let admin = outboxd::connect(cluster.url()).await.unwrap();
    let work_mem: String = admin.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_eq!(work_mem, "7MB");
    assert!(cluster.postmaster_pid().is_some());
    assert!(cluster.cpu_seconds().is_some_and(|s| s >= 0.0));

    let (url, name) = cluster.create_database("outboxd_kit").await.unwrap();
    assert!(
        name.starts_with("outboxd_kit_") && url.ends_with(&name),
        "{url}"
    );
    let c = outboxd::connect(&url).await.unwrap();
    outboxd::check_schema(&c).await.expect("migrated");
    drop(c);

    // An immediate restart breaks connections; the server comes back on the same URL. (A
    // checkpoint first: the throwaway cluster runs with synchronous_commit=off, so a crash may
    // lose the last commits, here the migration's.)
    admin.batch_execute("CHECKPOINT").await.unwrap();
    cluster.restart(Restart::Immediate).await.expect("restart");
    assert!(admin.query_one("SELECT 1", &[]).await.is_err());
    let c = outboxd::connect(&url)
        .await
        .expect("back after the restart");
    assert_eq!(events(&c).await, 0);
    drop(c);

    cluster.drop_database(&name).await.unwrap();
    assert!(outboxd::connect(&url).await.is_err(), "dropped");
    cluster.stop().await;
}

#[tokio::test]
async fn a_server_given_by_url_is_never_restarted() {
    let mut cluster = Cluster::at("postgres://postgres@127.0.0.1:9/postgres");
    let err = cluster.restart(Restart::Fast).await.unwrap_err();
    assert!(err.to_string().contains("never restarted"), "{err}");
    assert_eq!(cluster.url_for("x"), "postgres://postgres@127.0.0.1:9/x");
    assert!(cluster.cpu_seconds().is_none() && cluster.embedded().is_none());
}
