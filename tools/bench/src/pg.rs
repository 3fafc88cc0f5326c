//! PostgreSQL as the bench uses it. The server and its databases are the test kit's
//! ([`testkit::Cluster`]: `DATABASE_URL`, or a throwaway cluster whose CPU the bench accounts
//! for; [`testkit::create_database`] for a fresh migrated database per run). What is the
//! bench's own: what the report says about the server ([`ClusterInfo`]), the application table
//! the producers write (`bench.resources`), and the counters a run is measured with (WAL
//! position, rows written per table, delivery states, pg_stat_statements).

use std::collections::BTreeMap;

use anyhow::Context;
use serde::Serialize;
use testkit::{Cluster, PgOptions};

use crate::receiver::EndpointSpec;

/// The server every run's database lives on, and what the report says about it.
pub struct BenchCluster {
    cluster: Cluster,
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

impl BenchCluster {
    /// `DATABASE_URL`, else a throwaway cluster, `durable` (PostgreSQL's defaults for `fsync`,
    /// `full_page_writes` and `synchronous_commit`) or with all three off, and, with `pgss`,
    /// pg_stat_statements loaded.
    pub async fn start(
        durable: bool,
        pgss: bool,
        settings: &[(String, String)],
        keep: bool,
    ) -> anyhow::Result<BenchCluster> {
        let mut options = PgOptions {
            fsync: durable,
            ..PgOptions::default()
        };
        if pgss {
            options.settings.extend([
                (
                    "shared_preload_libraries".into(),
                    "pg_stat_statements".into(),
                ),
                ("pg_stat_statements.track".into(), "all".into()),
            ]);
        }
        options.settings.extend(settings.iter().cloned());
        let cluster = Cluster::from_env_or_throwaway(options)
            .await
            .context("starting a throwaway PostgreSQL (no DATABASE_URL)")?;
        let kind = if cluster.embedded().is_some() {
            "embedded"
        } else {
            "DATABASE_URL"
        };
        let mut c = BenchCluster {
            cluster,
            keep,
            info: ClusterInfo {
                kind: kind.into(),
                ..ClusterInfo::default()
            },
        };
        c.load_info().await?;
        Ok(c)
    }

    async fn load_info(&mut self) -> anyhow::Result<()> {
        let client = outboxd::connect(self.cluster.url())
            .await
            .context("connecting to PostgreSQL")?;
        self.info.server_version = client.query_one("SHOW server_version", &[]).await?.get(0);
        for name in [
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "shared_buffers",
            "max_wal_size",
            "checkpoint_timeout",
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

    /// Fails before any scenario runs when the embedded cluster's file system has less free
    /// space than `need` bytes (a full disk stops PostgreSQL, and the bench with it, half an
    /// hour into an `all` run). Nothing to check on `DATABASE_URL`. `what` needs the space;
    /// `smaller` says how to ask for less.
    pub fn check_free_space(&self, need: u64, what: &str, smaller: &str) -> anyhow::Result<()> {
        let Some(pg) = self.cluster.embedded() else {
            return Ok(());
        };
        let dir = pg.data_dir();
        let fs = rustix::fs::statvfs(dir)
            .with_context(|| format!("reading the free space of {}", dir.display()))?;
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        const GB: f64 = 1e9;
        anyhow::ensure!(
            free >= need,
            "{what} needs about {:.1} GB of disk for the bench's PostgreSQL, and the file \
             system of {} has {:.1} GB free: free some space, or {smaller}",
            need as f64 / GB,
            dir.display(),
            free as f64 / GB
        );
        Ok(())
    }

    /// Leaves the embedded cluster running (`--keep`) and says how to stop it.
    pub fn detach(self) {
        let url = self.cluster.url().to_owned();
        if let Some((dir, port)) = self.cluster.detach() {
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

    /// A new, migrated database with the bench's application table (`bench.resources`
    /// with `keys` rows).
    pub async fn fresh_db(&self, label: &str, keys: u32) -> anyhow::Result<BenchDb> {
        let prefix = format!(
            "outboxd_bench_{}",
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        let (url, name) = self.cluster.create_database(&prefix).await?;
        let client = outboxd::connect(&url).await?;
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
            drop_at_end: self.cluster.embedded().is_none() && !self.keep,
            server_url: self.cluster.url().to_owned(),
        })
    }

    /// CPU seconds used by the whole embedded cluster so far; `None` with DATABASE_URL.
    pub fn postgres_cpu_seconds(&self) -> Option<f64> {
        self.cluster.cpu_seconds()
    }
}

/// One database of a run.
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub client: tokio_postgres::Client,
    /// On someone else's server (`DATABASE_URL`): drop it when done (unless `--keep`).
    drop_at_end: bool,
    server_url: String,
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
            let _ = testkit::drop_database(&self.server_url, &self.name).await;
        }
    }
}
