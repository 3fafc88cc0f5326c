//! `/metrics` as an SRE reads it (README "Monitoring"), scraped from the real `outboxd` binary:
//! counters that start at 0, database-wide gauges from one replica only and never frozen,
//! series of deleted or disabled endpoints gone, per-endpoint labels that can be limited, the
//! end-to-end latency, `process_*`; and every metric the chart's dashboard and alerts use is
//! one a real scrape has (`promtool check metrics` on that scrape too, when promtool is there).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::*;

use crate::OUTBOXD;

/// Settings every sidecar here runs with: fast polling, retries and stats.
const FAST: &[(&str, &str)] = &[
    ("OUTBOXD_LISTEN", "127.0.0.1:0"),
    ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
    ("OUTBOXD_POLL_INTERVAL", "50ms"),
    ("OUTBOXD_RETRY_SCHEDULE", "50ms"),
    ("OUTBOXD_RETRY_JITTER", "0"),
    ("OUTBOXD_STATS_INTERVAL", "200ms"),
];

/// `outboxd run` with [`FAST`] and `extra`, started and ready.
async fn sidecar(url: &str, extra: &[(&str, &str)]) -> (Sidecar, SocketAddr) {
    let mut envs = FAST.to_vec();
    envs.extend_from_slice(extra);
    let mut s = Sidecar::run(OUTBOXD, url, &envs);
    let addr = s
        .wait_started(Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    s.wait_ready(addr, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (s, addr)
}

async fn scrape(addr: SocketAddr) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

/// Scrapes until `ok` holds for the parsed samples; returns them (panics after `deadline`).
pub(crate) async fn scrape_until(
    addr: SocketAddr,
    deadline: Duration,
    what: &str,
    ok: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let end = std::time::Instant::now() + deadline;
    loop {
        let m = parse_metrics(&scrape(addr).await);
        if ok(&m) {
            return m;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}; last scrape:\n{m:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_family(m: &BTreeMap<String, f64>, name: &str) -> bool {
    m.keys()
        .any(|k| k == name || k.starts_with(&format!("{name}{{")))
}

/// Series of `name` whose labels include every `label="value"` in `labels`.
fn series<'a>(m: &'a BTreeMap<String, f64>, name: &str, labels: &[&str]) -> Vec<(&'a str, f64)> {
    m.iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .filter(|(k, _)| labels.iter().all(|l| k.contains(l)))
        .map(|(k, v)| (k.as_str(), *v))
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> Option<f64> {
    m.get(key).copied()
}

async fn add_endpoint(c: &tokio_postgres::Client, url: &str) -> i64 {
    c.query_one(
        "SELECT outbox.add_endpoint($1, '{*}', NULL, $2)",
        &[&url, &TEST_SECRET],
    )
    .await
    .expect("add_endpoint")
    .get(0)
}

async fn publish(c: &tokio_postgres::Client, n: usize) {
    for i in 0..n {
        c.execute(
            "SELECT outbox.publish('order.paid', jsonb_build_object('i', $1::int))",
            &[&(i as i32)],
        )
        .await
        .expect("publish");
    }
}

/// A fresh database, a [`receiver`] and one endpoint per path (their ids, in order).
async fn endpoints(paths: &[&str]) -> (TestDb, tokio_postgres::Client, Receiver, Vec<i64>) {
    let db = fresh_db().await;
    let c = db.client().await;
    let rx = receiver().await;
    let mut ids = Vec::new();
    for p in paths {
        ids.push(add_endpoint(&c, &rx.url_for(p)).await);
    }
    (db, c, rx, ids)
}

/// Endpoint `id` presents client certificate `acme` from the directory returned (for
/// `OUTBOXD_CLIENT_CERT_DIR`; the client certificate families are exported only when an
/// endpoint names one). Over plain HTTP the certificate is never sent.
async fn present_a_client_certificate(c: &tokio_postgres::Client, id: i64) -> tempfile::TempDir {
    let certs = testkit::tls::Certs::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certs.client();
    std::fs::copy(&cert, dir.path().join("acme.crt")).unwrap();
    std::fs::copy(&key, dir.path().join("acme.key")).unwrap();
    c.execute(
        "UPDATE outbox.endpoints SET client_certificate = 'acme' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    dir
}

/// A receiver that answers 204 on `/ok` and 500 everywhere else.
async fn receiver() -> Receiver {
    Receiver::start(
        TEST_SECRET,
        script(|r| {
            if r.path == "/ok" {
                Reply::status(204)
            } else {
                Reply::status(500)
            }
        }),
    )
    .await
}

/// The metric names of the README's "Monitoring" table.
fn documented_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Monitoring")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Monitoring section")
        .to_owned();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("outboxd_"))
        .map(str::to_owned)
        .collect()
}

/// The README's counters without a label whose values come at run time (`endpoint_id`, an
/// inbound `source`), one `name{label="value"}` per documented label
/// value (`name` alone for unlabelled ones): what must be exported at 0 before any traffic.
fn documented_counter_label_sets() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut out = Vec::new();
    for row in readme.lines().filter(|l| l.starts_with("| `outboxd_")) {
        // | name | type | labels | meaning | exported by |
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (name, cells) = (cells[1].trim_matches('`'), &cells[1..]);
        if cells[1] != "counter"
            || cells[2].contains("endpoint_id")
            || cells[2].starts_with("`source`")
        {
            continue;
        }
        match cells[2].split_once(" = ") {
            None => out.push(name.to_owned()),
            Some((label, values)) => {
                let label = label.trim_matches('`');
                for v in values.split(", ") {
                    out.push(format!(
                        "{name}{{{label}=\"{}\"}}",
                        v.trim().trim_matches('`')
                    ));
                }
            }
        }
    }
    out
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn every_documented_metric_is_exported_and_counters_start_at_zero() {
    let (db, c, _rx, ids) = endpoints(&["/ok"]).await;
    let ok = ids[0];
    let inbound = format!("127.0.0.1:{}", free_port());
    let cert_dir = present_a_client_certificate(&c, ok).await;
    let (_s, addr) = sidecar(
        &db.url,
        &[
            ("OUTBOXD_INBOUND_LISTEN", &inbound),
            ("OUTBOXD_CLIENT_CERT_DIR", cert_dir.path().to_str().unwrap()),
        ],
    )
    .await;

    // Before any traffic: every known label set of the counters is there, at 0.
    let m = scrape_until(addr, Duration::from_secs(10), "the first stats", |m| {
        has_family(m, "outboxd_deliveries_pending")
    })
    .await;
    let zeros = documented_counter_label_sets();
    assert!(zeros.len() >= 20, "{zeros:?}");
    for key in zeros.iter().map(String::as_str).chain([
        &format!("outboxd_attempts_total{{endpoint_id=\"{ok}\",result=\"failure\"}}"),
        &format!("outboxd_deliveries_completed_total{{endpoint_id=\"{ok}\",state=\"dead\"}}"),
        &format!("outboxd_endpoint_circuit_state{{endpoint_id=\"{ok}\"}}"),
        "outboxd_deliveries_pending",
    ]) {
        assert_eq!(get(&m, key), Some(0.0), "{key}");
    }
    assert_eq!(get(&m, "outboxd_ready"), Some(1.0));
    assert_eq!(get(&m, "outboxd_stats_leader"), Some(1.0));
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(has_family(&m, name), "{name}");
    }

    // Traffic: the end-to-end latency of each delivered event.
    publish(&c, 5).await;
    let key = format!("outboxd_delivery_latency_seconds_count{{endpoint_id=\"{ok}\"}}");
    let m = scrape_until(addr, Duration::from_secs(20), "5 deliveries", |m| {
        get(m, &key) == Some(5.0)
    })
    .await;
    assert_eq!(
        get(
            &m,
            &format!(
                "outboxd_deliveries_completed_total{{endpoint_id=\"{ok}\",state=\"succeeded\"}}"
            )
        ),
        Some(5.0)
    );
    assert_eq!(get(&m, "outboxd_events_routed_total"), Some(5.0));
    let latency_sum = get(
        &m,
        &format!("outboxd_delivery_latency_seconds_sum{{endpoint_id=\"{ok}\"}}"),
    )
    .unwrap();
    assert!(latency_sum > 0.0 && latency_sum < 60.0, "{latency_sum}");

    // Inbound traffic: one request stored.
    c.batch_execute("SELECT outbox.add_source('m', 'none')")
        .await
        .expect("add_source");
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("http://{inbound}/in/m"))
        .body("x")
        .send()
        .await
        .expect("POST /in/m")
        .status();
    assert_eq!(status, 200);
    let m = scrape_until(addr, Duration::from_secs(10), "an inbound request", |m| {
        m.iter().any(|(k, v)| {
            k.starts_with("outboxd_inbound_requests_total{")
                && k.contains("source=\"m\"")
                && k.contains("result=\"stored\"")
                && *v == 1.0
        })
    })
    .await;

    let exported: BTreeSet<String> = documented_metrics()
        .into_iter()
        .filter(|n| !has_family(&m, n) && !has_family(&m, &format!("{n}_count")))
        .collect();
    assert!(
        exported.is_empty(),
        "documented but not exported: {exported:?}"
    );
}

#[tokio::test]
async fn database_wide_gauges_come_from_one_replica_and_another_takes_over() {
    let db = fresh_db().await;
    let (mut a, addr_a) = sidecar(&db.url, &[]).await;
    let (mut b, addr_b) = sidecar(&db.url, &[]).await;
    let pending = |m: &BTreeMap<String, f64>| has_family(m, "outboxd_deliveries_pending");
    // Whichever holds the lease exports; the other says it does not, and stays out.
    let (ma, mb) = loop {
        let (ma, mb) = (
            parse_metrics(&scrape(addr_a).await),
            parse_metrics(&scrape(addr_b).await),
        );
        if pending(&ma) || pending(&mb) {
            break (ma, mb);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(pending(&ma) != pending(&mb), "exactly one exports");
    let leaders =
        get(&ma, "outboxd_stats_leader").unwrap() + get(&mb, "outboxd_stats_leader").unwrap();
    assert_eq!(leaders, 1.0);
    for m in [&ma, &mb] {
        assert_eq!(
            pending(m),
            has_family(m, "outboxd_endpoint_deliveries_pending"),
            "all or nothing"
        );
        assert_eq!(pending(m), has_family(m, "outboxd_outbox_lag_seconds"));
    }
    // The leader stops (SIGTERM gives the lease back): the other one takes over at once.
    let (leader, survivor) = if pending(&ma) {
        (&mut a, addr_b)
    } else {
        (&mut b, addr_a)
    };
    assert!(leader.terminate(Duration::from_secs(20)).await.is_some());
    scrape_until(
        survivor,
        Duration::from_secs(10),
        "the survivor to export",
        |m| pending(m) && get(m, "outboxd_stats_leader") == Some(1.0),
    )
    .await;
}

#[tokio::test]
async fn series_of_deleted_and_disabled_endpoints_disappear() {
    let (db, c, _rx, ids) = endpoints(&["/ok", "/fail", "/fail2"]).await;
    let (_s, addr) = sidecar(&db.url, &[("OUTBOXD_CIRCUIT_FAILURES", "2")]).await;
    publish(&c, 3).await;
    let open = |id: i64| format!("outboxd_endpoint_circuit_state{{endpoint_id=\"{id}\"}}");
    let m = scrape_until(addr, Duration::from_secs(20), "open circuits", |m| {
        get(m, &open(ids[1])) == Some(1.0) && get(m, &open(ids[2])) == Some(1.0)
    })
    .await;
    let label = |id: i64| format!("endpoint_id=\"{id}\"");
    for &id in &ids {
        assert!(!series(&m, "outboxd_attempts_total", &[&label(id)]).is_empty());
    }
    assert_eq!(
        get(&m, "outboxd_endpoint_circuits{state=\"open\"}"),
        Some(2.0)
    );

    c.execute("DELETE FROM outbox.endpoints WHERE id = $1", &[&ids[1]])
        .await
        .unwrap();
    c.execute(
        "UPDATE outbox.endpoints SET enabled = false WHERE id = $1",
        &[&ids[2]],
    )
    .await
    .unwrap();
    let m = scrape_until(addr, Duration::from_secs(20), "the series to go", |m| {
        !m.keys()
            .any(|k| k.contains(&label(ids[1])) || k.contains(&label(ids[2])))
    })
    .await;
    assert!(!series(&m, "outboxd_attempts_total", &[&label(ids[0])]).is_empty());
    assert_eq!(
        get(&m, "outboxd_endpoint_circuits{state=\"open\"}"),
        Some(0.0)
    );
    assert_eq!(
        get(&m, "outboxd_endpoint_circuits{state=\"closed\"}"),
        Some(1.0)
    );
}

#[tokio::test]
async fn per_endpoint_labels_can_be_limited() {
    let (db, c, _rx, ids) = endpoints(&["/ok", "/fail", "/ok"]).await;
    let (ok, failing, quiet) = (ids[0], ids[1], ids[2]);
    c.execute(
        "UPDATE outbox.subscriptions SET active = false WHERE endpoint_id = $1",
        &[&quiet],
    )
    .await
    .unwrap();
    publish(&c, 2).await;

    // none: one `other` series per family, whatever the number of endpoints.
    let (none, addr) = sidecar(&db.url, &[("OUTBOXD_METRICS_ENDPOINT_LABELS", "none")]).await;
    let m = scrape_until(addr, Duration::from_secs(20), "2 successes", |m| {
        get(
            m,
            "outboxd_attempts_total{endpoint_id=\"other\",result=\"success\"}",
        ) == Some(2.0)
    })
    .await;
    let ids: BTreeSet<&str> = m
        .keys()
        .filter_map(|k| k.split("endpoint_id=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(ids, BTreeSet::from(["other"]));
    // SIGTERM gives its leases back, so the next one retries the failing deliveries at once.
    let mut none = none;
    assert!(none.terminate(Duration::from_secs(20)).await.is_some());

    // top:1: one endpoint has series of its own (at start the lowest id; re-ranked every
    // minute), the others are summed in `other`.
    let (_top, addr) = sidecar(&db.url, &[("OUTBOXD_METRICS_ENDPOINT_LABELS", "top:1")]).await;
    publish(&c, 2).await;
    let m = scrape_until(addr, Duration::from_secs(20), "attempts in other", |m| {
        series(m, "outboxd_attempts_total", &["endpoint_id=\"other\""])
            .iter()
            .any(|(_, v)| *v > 0.0)
    })
    .await;
    let own: BTreeSet<String> = series(&m, "outboxd_attempts_total", &["result=\"success\""])
        .iter()
        .filter_map(|(k, _)| k.split("endpoint_id=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(own.len(), 2, "one endpoint and other: {own:?}");
    assert!(own.contains("other"));
    assert!(
        own.contains(&ok.to_string()) || own.contains(&failing.to_string()),
        "{own:?}"
    );
    assert!(!own.contains(&quiet.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_postgresql_stop_the_database_gauges_go_and_their_staleness_shows() {
    // Its own cluster: stopping the shared one would break other tests.
    let mut pg = Cluster::throwaway(PgOptions::default())
        .await
        .expect("own PostgreSQL");
    let (url, _) = pg.create_database("outboxd_metrics_stop").await.unwrap();
    let (_s, addr) = sidecar(&url, &[]).await;
    let before = scrape_until(addr, Duration::from_secs(10), "the stats", |m| {
        has_family(m, "outboxd_outbox_lag_seconds")
    })
    .await;
    let last = get(&before, "outboxd_stats_last_success_timestamp_seconds").unwrap();

    pg.stop().await;
    let m = scrape_until(addr, Duration::from_secs(30), "the gauges to go", |m| {
        !has_family(m, "outboxd_outbox_lag_seconds")
            && get(m, "outboxd_db_errors_total{task=\"stats\"}").is_some_and(|n| n > 0.0)
    })
    .await;
    for gone in [
        "outboxd_deliveries_pending",
        "outboxd_deliveries_dead",
        "outboxd_oldest_pending_delivery_age_seconds",
        "outboxd_endpoint_deliveries_pending",
    ] {
        assert!(!has_family(&m, gone), "{gone} is still exported");
    }
    let still = get(&m, "outboxd_stats_last_success_timestamp_seconds").unwrap();
    assert!(still >= last, "the time of the last success stays");
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(unix_now - still > 0.2, "and it ages: {unix_now} - {still}");
    assert_eq!(get(&m, "outboxd_ready"), Some(0.0));
}

// ------------------------------------------------------------------------------------------
// The dashboard and the alerts against a real scrape

/// Labels Prometheus adds when it scrapes (target labels), not outboxd.
const TARGET_LABELS: &[&str] = &[
    "namespace",
    "job",
    "instance",
    "pod",
    "container",
    "service",
    "endpoint",
    "__name__",
];

/// The vector selectors (metric name, label names matched) of a PromQL expression.
fn selectors(expr: &promql_parser::parser::Expr, out: &mut Vec<(String, Vec<String>)>) {
    use promql_parser::parser::Expr;
    let mut vs = |v: &promql_parser::parser::VectorSelector| {
        let labels = v
            .matchers
            .matchers
            .iter()
            .chain(v.matchers.or_matchers.iter().flatten())
            .map(|m| m.name.clone())
            .collect();
        out.push((v.name.clone().unwrap_or_default(), labels));
    };
    match expr {
        Expr::VectorSelector(v) => vs(v),
        Expr::MatrixSelector(m) => vs(&m.vs),
        Expr::Aggregate(a) => {
            selectors(&a.expr, out);
            if let Some(p) = &a.param {
                selectors(p, out);
            }
        }
        Expr::Unary(u) => selectors(&u.expr, out),
        Expr::Binary(b) => {
            selectors(&b.lhs, out);
            selectors(&b.rhs, out);
        }
        Expr::Paren(p) => selectors(&p.expr, out),
        Expr::Subquery(s) => selectors(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selectors(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Every PromQL expression of the dashboard (Grafana variables replaced by plain values), with
/// where it comes from.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = repo().join("charts/outboxd/dashboards/outboxd.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            out.push((format!("dashboard panel {:?}", p["title"]), expr.to_owned()));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str()
            && let Some(inner) = q.strip_prefix("label_values(")
        {
            // label_values(<selector>, <label>)
            let selector = inner.rsplit_once(',').map(|(s, _)| s).unwrap_or(inner);
            out.push((
                format!("dashboard variable {:?}", v["name"]),
                selector.to_owned(),
            ));
        }
    }
    out.into_iter()
        .map(|(w, e)| {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("$namespace", "outboxd")
                .replace("$job", "outboxd");
            (w, e)
        })
        .collect()
}

/// Every alert expression of `charts/outboxd/rules/alerts.yaml`, with the chart's selector
/// placeholder filled in.
fn alert_exprs() -> Vec<(String, String)> {
    let path = repo().join("charts/outboxd/rules/alerts.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap_or("?");
            let expr = rule["expr"].as_str().unwrap();
            assert!(
                expr.contains("{__SELECTOR__"),
                "{name}: no selector placeholder"
            );
            out.push((
                format!("alert {name}"),
                expr.replace("__SELECTOR__", "namespace=\"outboxd\""),
            ));
        }
    }
    out
}

/// Runs `promtool check metrics` on the scrape. Without promtool the check is skipped, except
/// in CI (`CI` set), where `.ci/run` installs it.
fn promtool_check_metrics(text: &str) {
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not found ({e}): `promtool check metrics` skipped");
            return;
        }
        Err(e) => panic!("promtool is needed in CI (apt-get install prometheus): {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}"
    );
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_a_real_scrape_has() {
    let (db, c, _rx, ids) = endpoints(&["/ok", "/fail"]).await;
    let (ok, failing) = (ids[0], ids[1]);
    let cert_dir = present_a_client_certificate(&c, ok).await;
    // Failures that open a circuit and die, successes, a backlog.
    let (_s, addr) = sidecar(
        &db.url,
        &[
            ("OUTBOXD_CIRCUIT_FAILURES", "2"),
            ("OUTBOXD_CIRCUIT_COOLDOWN", "100ms"),
            ("OUTBOXD_MAX_AGE", "1s"),
            ("OUTBOXD_CLIENT_CERT_DIR", cert_dir.path().to_str().unwrap()),
        ],
    )
    .await;
    publish(&c, 4).await;
    let m = scrape_until(addr, Duration::from_secs(30), "successes and deaths", |m| {
        get(
            m,
            &format!(
                "outboxd_deliveries_completed_total{{endpoint_id=\"{ok}\",state=\"succeeded\"}}"
            ),
        ) == Some(4.0)
            && get(
                m,
                &format!(
                    "outboxd_deliveries_completed_total{{endpoint_id=\"{failing}\",state=\"dead\"}}"
                ),
            )
            .is_some_and(|n| n > 0.0)
            && get(m, "outboxd_attempt_errors_total{kind=\"status\"}").is_some_and(|n| n > 0.0)
    })
    .await;
    let text = scrape(addr).await;
    promtool_check_metrics(&text);

    // name -> label names seen on it
    let mut scraped: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in m.keys() {
        let (name, labels) = key.split_once('{').unwrap_or((key, ""));
        let entry = scraped.entry(name.to_owned()).or_default();
        for pair in labels.trim_end_matches('}').split(',') {
            if let Some((label, _)) = pair.split_once('=') {
                entry.insert(label.to_owned());
            }
        }
    }
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    let exprs: Vec<(String, String)> = dashboard_exprs().into_iter().chain(alert_exprs()).collect();
    assert!(exprs.len() > 20, "{exprs:?}");
    for (where_, expr) in &exprs {
        let parsed = match promql_parser::parser::parse(expr) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{where_}: not PromQL ({e}): {expr}"));
                continue;
            }
        };
        let mut found = Vec::new();
        selectors(&parsed, &mut found);
        for (name, labels) in found {
            let Some(has) = scraped.get(&name) else {
                problems.push(format!("{where_}: {name} is not in the scrape"));
                continue;
            };
            checked.insert(name.clone());
            for l in labels {
                if !has.contains(&l) && !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{where_}: {name} has no label {l}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    println!(
        "{} expressions, {} metric names, all in a real scrape: {}",
        exprs.len(),
        checked.len(),
        checked.into_iter().collect::<Vec<_>>().join(" ")
    );
}

/// The database-wide gauges' queries read indexes only, never a whole table: with millions of
/// succeeded deliveries (or a large backlog) a sequential scan every `OUTBOXD_STATS_INTERVAL`
/// is what the oldest-pending gauge did before V19 (0.3 s per refresh with 1 M deliveries).
/// With sequential scans disabled the planner still picks one when no index can answer.
#[tokio::test]
async fn the_stats_queries_never_scan_a_whole_table() {
    let db = fresh_db().await;
    let c = db.client().await;
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/engine");
    for file in ["stats.sql", "stats_endpoints.sql"] {
        let sql = std::fs::read_to_string(root.join(file)).unwrap();
        let plan: Vec<String> = c
            .query(&format!("EXPLAIN (COSTS OFF) {sql}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "{file}:\n{plan}");
    }
}
