//! What a run stands on ([`Stage`]: receiver, registered endpoints, commit log, sidecar) and
//! what it leaves once the sidecar stopped ([`Ended`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use testkit::Sidecar;
use testkit::pgbouncer::{PgBouncer, PoolMode};

use crate::pg::{BenchDb, DbSnapshot};
use crate::producers::{self, ProducerRun, ProducerStats, Progress, Workload};
use crate::receiver::{BenchReceiver, CommitLog, EndpointSpec};
use crate::sidecar::{self, SidecarStats};

/// The sidecars of a stage: `replicas` of them on the one database, with `env`, logging as
/// the run `label`.
pub struct Sidecars<'a> {
    pub replicas: u32,
    pub label: &'a str,
    pub env: &'a [(String, String)],
}

/// What a run stands on: a receiver for its endpoints, the endpoints registered at it, the
/// log of commit times, and a fresh sidecar. [`super::measure`] builds one per run; the tenant burst
/// (scenario 5) builds one to publish two tenants' events on it.
pub struct Stage {
    pub workload: Arc<Workload>,
    /// The endpoints as registered (with their `db_id`).
    pub specs: Arc<Vec<EndpointSpec>>,
    pub commits: Arc<CommitLog>,
    pub recv: BenchReceiver,
    pub sidecar: Sidecar,
    /// The sidecar's CPU seconds once it had started (its start-up is not the run's cost).
    pub sidecar_cpu0: f64,
    /// With `replicas` N: the other N − 1 replicas on the same database, with their CPU
    /// seconds once started.
    pub more: Vec<(Sidecar, f64)>,
    /// The database's counters before the sidecar started.
    pub snap0: DbSnapshot,
    /// Between the sidecar and PostgreSQL with `--pgbouncer`; stops when the stage is dropped.
    pub _pooler: Option<PgBouncer>,
}

impl Stage {
    /// Starts a receiver for `specs`, registers them at it (pointing endpoints registered
    /// earlier at it), snapshots `db`'s counters and starts the sidecars `sidecars` asks for.
    pub async fn start(
        ctx: &Ctx,
        db: &BenchDb,
        specs: &mut [EndpointSpec],
        workload: Arc<Workload>,
        max_in_flight: Option<i32>,
        sidecars: Sidecars<'_>,
    ) -> anyhow::Result<Stage> {
        let Sidecars {
            replicas,
            label,
            env,
        } = sidecars;
        let base = Instant::now();
        let commits = Arc::new(CommitLog::new(base, workload.len()));
        let recv =
            BenchReceiver::start(specs.to_vec(), workload.len(), workload.keys as usize, base)
                .await?;
        db.register_endpoints(specs, &workload.tenants, |i| recv.url(i), max_in_flight)
            .await?;
        let specs = Arc::new(specs.to_vec());
        let snap0 = db.snapshot().await?;
        let (pooler, sidecar_url, env) = match ctx.opts.pgbouncer.as_deref() {
            None => (None, db.url.clone(), env.to_vec()),
            Some(mode) => {
                let mode = match mode {
                    "session" => PoolMode::Session,
                    _ => PoolMode::Transaction,
                };
                // What README "Poolers" tells users to do: the session settings outboxd cannot
                // send through a transaction-mode pooler, set on the database instead.
                let quoted = db.name.replace('"', "\"\"");
                db.client
                    .batch_execute(&format!(
                        "ALTER DATABASE \"{quoted}\" SET jit = off; \
                         ALTER DATABASE \"{quoted}\" SET max_parallel_workers_per_gather = 0"
                    ))
                    .await
                    .context("setting jit and parallel workers for the pooled sidecar")?;
                let url = db.url.clone();
                let bouncer =
                    tokio::task::spawn_blocking(move || PgBouncer::start(&url, mode, &[]))
                        .await
                        .map_err(|e| anyhow::anyhow!("starting PgBouncer: {e}"))?;
                let mut env = env.to_vec();
                env.push(("OUTBOXD_POOLER".into(), mode.as_str().into()));
                let through = bouncer.through(&db.url);
                println!(
                    "  sidecar through PgBouncer ({} mode): {through}",
                    mode.as_str()
                );
                (Some(bouncer), through, env)
            }
        };
        let sidecar = sidecar::start(&ctx.outboxd, &sidecar_url, &env, ctx.log_path(label)).await?;
        let sidecar_cpu0 = sidecar::cpu_seconds(&sidecar);
        let mut more = Vec::new();
        for i in 2..=replicas {
            let mut env = env.clone();
            env.retain(|(k, _)| k != "OUTBOXD_REPLICA_ID");
            env.push(("OUTBOXD_REPLICA_ID".into(), format!("bench-{label}-{i}")));
            let log = ctx.log_path(&format!("{label}-{i}"));
            let replica = sidecar::start(&ctx.outboxd, &sidecar_url, &env, log).await?;
            let cpu0 = sidecar::cpu_seconds(&replica);
            more.push((replica, cpu0));
        }
        Ok(Stage {
            workload,
            specs,
            commits,
            recv,
            sidecar,
            sidecar_cpu0,
            more,
            snap0,
            _pooler: pooler,
        })
    }

    /// Lets the sidecar sit idle for `idle` (the LISTEN/NOTIFY path) and returns the cores it
    /// used meanwhile.
    pub async fn idle_cores(&self, idle: Duration) -> f64 {
        let t_idle = Instant::now();
        tokio::time::sleep(idle).await;
        self.sidecars()
            .map(|(s, cpu0)| sidecar::cpu_seconds(s) - cpu0)
            .sum::<f64>()
            / t_idle.elapsed().as_secs_f64().max(1e-9)
    }

    /// Whether every replica of the run is still running.
    pub fn all_running(&mut self) -> bool {
        self.sidecar.is_running() && self.more.iter_mut().all(|(s, _)| s.is_running())
    }

    /// Every replica of the run with its CPU seconds once started, the first one first.
    pub fn sidecars(&self) -> impl Iterator<Item = (&Sidecar, f64)> {
        std::iter::once((&self.sidecar, self.sidecar_cpu0))
            .chain(self.more.iter().map(|(s, c)| (s, *c)))
    }

    /// Producers publishing `events` of the workload (see [`producers::run`]), as a task.
    pub fn spawn_producers(
        &self,
        run: ProducerRun,
        events: Vec<u32>,
        progress: Arc<Progress>,
    ) -> JoinHandle<anyhow::Result<ProducerStats>> {
        let (w, specs, commits, st) = (
            self.workload.clone(),
            self.specs.clone(),
            self.commits.clone(),
            self.recv.state.clone(),
        );
        tokio::spawn(
            async move { producers::run(&run, w, events, specs, commits, st, progress).await },
        )
    }
}

/// What a run leaves once its sidecar stopped.
pub struct Ended {
    pub sidecar: SidecarStats,
    /// The database's counters after the run.
    pub snap1: DbSnapshot,
    /// Deliveries by state, and events not routed yet.
    pub states: BTreeMap<String, i64>,
    pub unrouted: i64,
}

impl Ended {
    /// Stops the sidecar (started with `cpu0` CPU seconds) and the other replicas (`more`), and
    /// reads what they left in `db`. Their figures are summed into the first one's (CPU,
    /// counters), the peak RSS is the highest.
    pub async fn stop(
        db: &BenchDb,
        sidecar: Sidecar,
        cpu0: f64,
        more: Vec<(Sidecar, f64)>,
    ) -> anyhow::Result<Ended> {
        let (sidecar, others) = tokio::join!(
            sidecar::stop(sidecar, cpu0),
            futures_util::future::join_all(more.into_iter().map(|(s, c)| sidecar::stop(s, c)))
        );
        let mut sidecar = sidecar;
        for o in others {
            sidecar.cpu_seconds += o.cpu_seconds;
            sidecar.peak_rss_mb = sidecar.peak_rss_mb.max(o.peak_rss_mb);
            for (k, v) in o.metrics {
                *sidecar.metrics.entry(k).or_insert(0.0) += v;
            }
        }
        // Backends flush their table statistics when they exit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let snap1 = db.snapshot().await?;
        let (states, unrouted) = db.outcome().await?;
        Ok(Ended {
            sidecar,
            snap1,
            states,
            unrouted,
        })
    }
}
