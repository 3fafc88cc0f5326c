//! The pieces every scenario uses: the PostgreSQL cluster (`DATABASE_URL` or a throwaway
//! [`EmbeddedPostgres`]), a fresh migrated database per run, the `outboxd` sidecar as a child
//! process, and CPU / memory / WAL / row counters.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use outboxd::embedded_pg::{EmbeddedPostgres, Options};
use serde::Serialize;

use crate::receiver::EndpointSpec;

/// Where PostgreSQL runs.
pub struct Cluster {
    pg: Option<EmbeddedPostgres>,
    admin_url: String,
    /// Keep databases (and, when embedded, the cluster) at the end.
    keep: bool,
    pub info: ClusterInfo,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ClusterInfo {
    /// "embedded" (throwaway cluster started by the bench) or "DATABASE_URL".
    pub kind: String,
    pub server_version: String,
    pub settings: BTreeMap<String, String>,
    pub pg_stat_statements: bool,
}

impl Cluster {
    pub async fn start(fsync: bool, pgss: bool, keep: bool) -> anyhow::Result<Cluster> {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let mut c = Cluster {
                pg: None,
                keep,
                admin_url: url,
                info: ClusterInfo {
                    kind: "DATABASE_URL".into(),
                    ..ClusterInfo::default()
                },
            };
            c.load_info().await?;
            return Ok(c);
        }
        let mut opts = Options {
            fsync,
            ..Options::default()
        };
        if pgss {
            opts.settings.push((
                "shared_preload_libraries".into(),
                "pg_stat_statements".into(),
            ));
            opts.settings
                .push(("pg_stat_statements.track".into(), "all".into()));
        }
        let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(opts))
            .await
            .context("starting PostgreSQL")?
            .context("starting a throwaway PostgreSQL (no DATABASE_URL)")?;
        let mut c = Cluster {
            admin_url: pg.url(),
            pg: Some(pg),
            keep,
            info: ClusterInfo {
                kind: "embedded".into(),
                ..ClusterInfo::default()
            },
        };
        c.load_info().await?;
        Ok(c)
    }

    async fn load_info(&mut self) -> anyhow::Result<()> {
        let client = outboxd::connect(&self.admin_url)
            .await
            .context("connecting to PostgreSQL")?;
        self.info.server_version = client.query_one("SHOW server_version", &[]).await?.get(0);
        for name in [
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "shared_buffers",
            "max_wal_size",
            "max_connections",
            "work_mem",
            "wal_level",
            "autovacuum",
            "shared_preload_libraries",
        ] {
            let v: String = client.query_one(&format!("SHOW {name}"), &[]).await?.get(0);
            self.info.settings.insert(name.into(), v);
        }
        self.info.pg_stat_statements = self
            .info
            .settings
            .get("shared_preload_libraries")
            .is_some_and(|s| s.contains("pg_stat_statements"));
        Ok(())
    }

    /// Leaves the embedded cluster running (`--keep`) and says how to stop it.
    pub fn detach(&mut self) {
        if let Some(pg) = self.pg.take() {
            let url = pg.url();
            let (dir, port) = pg.detach();
            println!(
                "kept: PostgreSQL at {url} (port {port}, data {}); stop it with: \
                 runuser -u postgres -- {}/pg_ctl stop -m immediate -D {} && rm -rf {}",
                dir.display(),
                outboxd::embedded_pg::bin_dir()
                    .map(|b| b.display().to_string())
                    .unwrap_or_else(|_| "<bindir>".into()),
                dir.display(),
                dir.parent()
                    .map_or(String::new(), |p| p.display().to_string())
            );
        }
    }

    /// A URL for database `db` on this cluster.
    pub fn url_for(&self, db: &str) -> anyhow::Result<String> {
        if let Some(pg) = &self.pg {
            return Ok(pg.url_for(db));
        }
        let mut u = url::Url::parse(&self.admin_url).context("parsing DATABASE_URL")?;
        u.set_path(&format!("/{db}"));
        Ok(u.to_string())
    }

    /// A new, migrated database with the bench's application table (`bench.resources`
    /// with `keys` rows).
    pub async fn fresh_db(&self, label: &str, keys: u32) -> anyhow::Result<BenchDb> {
        static N: AtomicU64 = AtomicU64::new(0);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!(
            "outboxd_bench_{}_{}_{}_{}",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            secs,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = outboxd::connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let url = self.url_for(&name)?;
        let mut client = outboxd::connect(&url).await?;
        outboxd::migrate(&mut client)
            .await
            .context("migrating the bench database")?;
        client
            .batch_execute(
                "CREATE SCHEMA bench;
                 CREATE TABLE bench.resources (
                     id integer PRIMARY KEY,
                     version bigint NOT NULL DEFAULT 0,
                     updated_at timestamptz NOT NULL DEFAULT now()
                 ) WITH (fillfactor = 80);",
            )
            .await?;
        client
            .execute(
                "INSERT INTO bench.resources (id) SELECT g FROM generate_series(0, $1 - 1) g",
                &[&(keys as i32)],
            )
            .await?;
        if self.info.pg_stat_statements {
            client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .await?;
        }
        Ok(BenchDb {
            name,
            url,
            client,
            drop_at_end: self.pg.is_none() && !self.keep,
            admin_url: self.admin_url.clone(),
        })
    }

    /// The postmaster's pid (embedded cluster only).
    fn postmaster_pid(&self) -> Option<u32> {
        let pg = self.pg.as_ref()?;
        let text = fs::read_to_string(pg.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// CPU seconds used by the whole embedded cluster so far (postmaster, its live children,
    /// and children it has reaped). `None` with DATABASE_URL.
    pub fn postgres_cpu_seconds(&self) -> Option<f64> {
        let pm = self.postmaster_pid()?;
        let mut total = proc_cpu(pm).map(|c| c.own + c.children).ok()?;
        if let Ok(dir) = fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if let Ok(c) = proc_cpu(pid)
                    && c.ppid == pm
                {
                    total += c.own;
                }
            }
        }
        Some(total)
    }
}

/// One database of a run.
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub client: tokio_postgres::Client,
    /// On someone else's server (`DATABASE_URL`): drop it when done (unless `--keep`).
    drop_at_end: bool,
    admin_url: String,
}

/// Counters read from PostgreSQL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DbSnapshot {
    pub wal_bytes: i64,
    /// relname -> (ins, upd, hot_upd, del) for schema outbox.
    pub tables: BTreeMap<String, [i64; 4]>,
}

/// Row counts written between two snapshots, per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RowsWritten {
    pub total: i64,
    pub inserted: i64,
    pub updated: i64,
    pub hot_updated: i64,
    pub deleted: i64,
    pub per_table: BTreeMap<String, [i64; 4]>,
}

pub fn rows_between(a: &DbSnapshot, b: &DbSnapshot) -> RowsWritten {
    let mut r = RowsWritten::default();
    for (name, after) in &b.tables {
        let before = a.tables.get(name).copied().unwrap_or_default();
        let d = [
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
            after[3] - before[3],
        ];
        r.inserted += d[0];
        r.updated += d[1];
        r.hot_updated += d[2];
        r.deleted += d[3];
        r.per_table.insert(name.clone(), d);
    }
    r.total = r.inserted + r.updated + r.deleted;
    r
}

impl BenchDb {
    /// The cluster's WAL position in bytes (differences give WAL written).
    pub async fn wal_bytes(&self) -> anyhow::Result<i64> {
        Ok(self
            .client
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint",
                &[],
            )
            .await?
            .get(0))
    }

    pub async fn snapshot(&self) -> anyhow::Result<DbSnapshot> {
        // This connection's own pending counters (e.g. endpoints just registered) are flushed
        // when it goes idle after this (PostgreSQL 15+; older servers: ignored).
        let _ = self
            .client
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .await;
        self.client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await?;
        let wal = self.wal_bytes().await?;
        let mut tables = BTreeMap::new();
        for r in self
            .client
            .query(
                "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del \
                   FROM pg_stat_user_tables WHERE schemaname = 'outbox'",
                &[],
            )
            .await?
        {
            tables.insert(
                r.get::<_, String>(0),
                [r.get(1), r.get(2), r.get(3), r.get(4)],
            );
        }
        Ok(DbSnapshot {
            wal_bytes: wal,
            tables,
        })
    }

    /// Registers the endpoints not registered yet (`outbox.add_endpoint`) pointing at
    /// `url_of(index)`, and repoints the registered ones there.
    pub async fn register_endpoints(
        &self,
        specs: &mut [EndpointSpec],
        tenants: &[String],
        url_of: impl Fn(usize) -> String,
        max_in_flight: Option<i32>,
    ) -> anyhow::Result<()> {
        for (i, s) in specs.iter_mut().enumerate() {
            let url = url_of(i);
            match s.db_id {
                Some(id) => {
                    self.client
                        .execute(
                            "UPDATE outbox.endpoints SET url = $2, updated_at = now() WHERE id = $1 AND url <> $2",
                            &[&id, &url],
                        )
                        .await?;
                }
                None => {
                    let tenant = tenants
                        .get(s.tenant as usize)
                        .with_context(|| format!("tenant index {}", s.tenant))?;
                    let id: i64 = self
                        .client
                        .query_one(
                            "SELECT outbox.add_endpoint($1, $2::text[], $3, $4)",
                            &[&url, &s.patterns, tenant, &s.secret],
                        )
                        .await
                        .with_context(|| format!("add_endpoint {}", s.name))?
                        .get(0);
                    s.db_id = Some(id);
                }
            }
        }
        if let Some(m) = max_in_flight {
            let ids: Vec<i64> = specs.iter().filter_map(|s| s.db_id).collect();
            self.client
                .execute(
                    "UPDATE outbox.endpoints SET max_in_flight = $2 WHERE id = ANY($1)",
                    &[&ids, &m],
                )
                .await?;
        }
        Ok(())
    }

    /// Deliveries by state, and events not routed yet.
    pub async fn outcome(&self) -> anyhow::Result<(BTreeMap<String, i64>, i64)> {
        let mut states = BTreeMap::new();
        for r in self
            .client
            .query(
                "SELECT state, count(*) FROM outbox.deliveries GROUP BY state",
                &[],
            )
            .await?
        {
            states.insert(r.get::<_, String>(0), r.get::<_, i64>(1));
        }
        let unrouted: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM outbox.events WHERE routed_at IS NULL",
                &[],
            )
            .await?
            .get(0);
        Ok((states, unrouted))
    }

    /// The top statements by total execution time (needs pg_stat_statements).
    pub async fn top_statements(&self, limit: i64) -> anyhow::Result<Vec<serde_json::Value>> {
        let rows = self
            .client
            .query(
                "SELECT calls, total_exec_time, mean_exec_time, rows, \
                        shared_blks_hit + shared_blks_read AS blks, wal_bytes::bigint, \
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 300) \
                   FROM pg_stat_statements \
                  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                  ORDER BY total_exec_time DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "calls": r.get::<_, i64>(0),
                    "total_ms": r.get::<_, f64>(1),
                    "mean_ms": r.get::<_, f64>(2),
                    "rows": r.get::<_, i64>(3),
                    "blocks": r.get::<_, i64>(4),
                    "wal_bytes": r.get::<_, i64>(5),
                    "query": r.get::<_, String>(6),
                })
            })
            .collect())
    }

    /// Drops the database when it lives on someone else's server (`DATABASE_URL`); the
    /// embedded cluster is thrown away as a whole.
    pub async fn cleanup(self) {
        if self.drop_at_end {
            drop(self.client);
            if let Ok(admin) = outboxd::connect(&self.admin_url).await {
                let _ = admin
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .await;
            }
        }
    }
}

/// CPU times of a process, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcCpu {
    pub own: f64,
    pub children: f64,
    pub ppid: u32,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime+stime (and cutime+cstime) of `pid` from /proc/<pid>/stat.
pub fn proc_cpu(pid: u32) -> anyhow::Result<ProcCpu> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .context("malformed /proc stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let num = |i: usize| -> anyhow::Result<f64> {
        f.get(i - 3)
            .context("short /proc stat")?
            .parse::<f64>()
            .context("bad /proc stat field")
    };
    let tck = clock_ticks();
    Ok(ProcCpu {
        own: (num(14)? + num(15)?) / tck,
        children: (num(16)? + num(17)?) / tck,
        ppid: num(4)? as u32,
    })
}

/// A field of /proc/<pid>/status in kB (e.g. "VmHWM").
pub fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let v = rest
                .split_whitespace()
                .next()
                .context("empty status field")?;
            return Ok(v.parse()?);
        }
    }
    bail!("no {field} in /proc/{pid}/status")
}

/// Figures of one sidecar process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SidecarStats {
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub exit: String,
    pub log: String,
    /// Selected counters from its /metrics at the end.
    pub metrics: BTreeMap<String, f64>,
}

/// `outboxd run` as a child process.
pub struct Sidecar {
    child: Child,
    pub pid: u32,
    pub listen: SocketAddr,
    log: PathBuf,
    exited: bool,
}

impl Sidecar {
    /// Spawns `outboxd run` against `db_url` with the bench's defaults plus `envs`, and waits
    /// until it logs that it started.
    pub async fn start(
        bin: &Path,
        db_url: &str,
        envs: &[(String, String)],
        log: PathBuf,
    ) -> anyhow::Result<Sidecar> {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir)?;
        }
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k == "DATABASE_URL" || k.starts_with("OUTBOXD_") || k == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        cmd.arg("run")
            .env("DATABASE_URL", db_url)
            .env("OUTBOXD_LISTEN", "127.0.0.1:0")
            .env("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8")
            .env("OUTBOXD_LOG_FORMAT", "json")
            .env("OUTBOXD_LOG", "info")
            .env("OUTBOXD_SHUTDOWN_GRACE", "5s")
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let pid = child.id();
        let mut sc = Sidecar {
            child,
            pid,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            exited: false,
        };
        let t0 = Instant::now();
        loop {
            if let Some(addr) = sc.started_addr() {
                sc.listen = addr;
                return Ok(sc);
            }
            if let Ok(Some(status)) = sc.child.try_wait() {
                sc.exited = true;
                bail!(
                    "outboxd exited during start ({status}):\n{}",
                    tail(&sc.log_text(), 30)
                );
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!(
                    "outboxd did not start within 30 s:\n{}",
                    tail(&sc.log_text(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn started_addr(&self) -> Option<SocketAddr> {
        for line in self.log_text().lines() {
            if !line.contains("outboxd started") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let listen = v
                .get("fields")
                .and_then(|f| f.get("listen"))
                .or_else(|| v.get("listen"))?
                .as_str()?;
            return listen.parse().ok();
        }
        None
    }

    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu(self.pid).map(|c| c.own).unwrap_or(f64::NAN)
    }

    pub fn peak_rss_mb(&self) -> f64 {
        proc_status_kb(self.pid, "VmHWM")
            .map(|kb| kb as f64 / 1024.0)
            .unwrap_or(f64::NAN)
    }

    pub fn rss_mb(&self) -> f64 {
        proc_status_kb(self.pid, "VmRSS")
            .map(|kb| kb as f64 / 1024.0)
            .unwrap_or(f64::NAN)
    }

    pub fn is_running(&mut self) -> bool {
        !self.exited && matches!(self.child.try_wait(), Ok(None))
    }

    /// Selected counters from `/metrics`.
    pub async fn scrape(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let url = format!("http://{}/metrics", self.listen);
        let Ok(resp) = reqwest::get(&url).await else {
            return out;
        };
        let Ok(text) = resp.text().await else {
            return out;
        };
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let base = name.split('{').next().unwrap_or(name);
            let keep = [
                "outboxd_db_errors_total",
                "outboxd_leases_rescued_total",
                "outboxd_events_routed_total",
                "outboxd_deliveries_created_total",
                "outboxd_deliveries_dead",
            ];
            if keep.contains(&base)
                && let Ok(v) = value.parse::<f64>()
            {
                *out.entry(name.to_owned()).or_insert(0.0) += v;
            }
        }
        out
    }

    /// Reads CPU and peak RSS, then SIGTERM (SIGKILL after 15 s).
    pub async fn stop(mut self, cpu_at_start: f64) -> SidecarStats {
        let mut stats = SidecarStats {
            cpu_seconds: self.cpu_seconds() - cpu_at_start,
            peak_rss_mb: self.peak_rss_mb(),
            log: self.log.display().to_string(),
            metrics: self.scrape().await,
            exit: String::new(),
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        let t0 = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    stats.exit = status.to_string();
                    break;
                }
                Ok(None) if t0.elapsed() < Duration::from_secs(15) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    stats.exit = "killed after 15 s".into();
                    break;
                }
            }
        }
        self.exited = true;
        stats
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Machine facts for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `git rev-parse --short HEAD` of the sources, and whether the tree had local changes.
    pub source: String,
    /// Modification time of the `outboxd` binary the sidecars run.
    pub outboxd_built: String,
    pub nproc: usize,
    pub mem_total_gib: f64,
    pub kernel: String,
    pub loadavg_at_start: String,
    pub date_utc: String,
}

impl Machine {
    pub fn read() -> Machine {
        let mem_kb = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let outboxd_built = std::env::current_exe()
            .ok()
            .and_then(|e| fs::metadata(e.with_file_name("outboxd")).ok())
            .and_then(|m| m.modified().ok())
            .map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .format("%Y-%m-%d %H:%M:%S UTC")
                    .to_string()
            })
            .unwrap_or_default();
        Machine {
            source: source_revision(),
            outboxd_built,
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            mem_total_gib: mem_kb / 1024.0 / 1024.0,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            loadavg_at_start: loadavg(),
            date_utc: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

fn source_revision() -> String {
    let Some(dir) = option_env!("CARGO_MANIFEST_DIR") else {
        return "unknown".into();
    };
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev} + uncommitted changes")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU used by processes that are neither this bench, its sidecar nor PostgreSQL's
/// cluster during a run: an indication of other work on the machine. Reads total CPU
/// time from /proc/stat (all CPUs, in seconds, excluding idle and iowait).
pub fn machine_busy_seconds() -> f64 {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return f64::NAN;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| *x)
        .sum();
    busy / clock_ticks()
}

/// CPU of this process so far.
pub fn self_cpu_seconds() -> f64 {
    proc_cpu(std::process::id())
        .map(|c| c.own)
        .unwrap_or(f64::NAN)
}
