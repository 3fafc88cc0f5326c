//! The live upgrade (`--upgrade-from OLD`; issue 16: "old replicas running, migrate, new
//! replicas take over, nothing lost").
//!
//! The database is migrated by the OLD binary's `outboxd migrate` ([`migrate`], at set-up)
//! and the replicas start as OLD. At the rolling restart's turn in the fault schedule
//! ([`crate::faults`]), with work in flight, [`live`]:
//!
//! 1. runs the NEW binary's `outboxd migrate` against the live database while the old
//!    replicas keep running (it must succeed; its time is reported);
//! 2. asks each old replica's `/readyz` what it makes of the newer schema (reported);
//! 3. lets the old replicas work on the new schema for [`OLD_ON_NEW_SCHEMA`];
//! 4. replaces them one by one: SIGTERM (it must exit 0, as in every rolling restart) and a
//!    NEW replica in its place. From the migration on, every (re)start runs the new binary.
//!
//! The verdict is the soak's usual one; [`crate::check`] adds that the upgrade happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::faults::{self, Fault, FaultKind};
use crate::replicas::ReplicaSet;

/// How long the old replicas work on the new schema before the first one is replaced: more
/// than a lease, so that their claim, record and lease rescue all run on it.
const OLD_ON_NEW_SCHEMA: Duration = Duration::from_secs(5);
/// The longest an `outboxd migrate` may take (it waits for locks behind live transactions).
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the live upgrade did, for the checks and the report.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The schema's version before and after the new binary's migrate.
    pub from: Option<i32>,
    pub to: Option<i32>,
    /// The new binary's `outboxd migrate`: how long it took, and why it failed.
    pub took: Duration,
    pub error: Option<String>,
    /// Each old replica's `/readyz` answer right after the migration: (replica, answer).
    pub old_readyz: Vec<(String, String)>,
    /// The old replicas replaced by new ones, in order.
    pub replaced: Vec<Replaced>,
}

/// One old replica replaced by a new one.
#[derive(Debug, Clone)]
pub struct Replaced {
    pub replica: String,
    /// Its SIGTERM exited 0 and the new process started.
    pub clean: bool,
    /// Delivery attempts the old process recorded between the migration and its SIGTERM, and
    /// how many of them were answered 2xx: the old binary at work on the new schema.
    pub attempts: i64,
    pub attempts_2xx: i64,
}

impl Upgrade {
    /// `V19→V20`.
    pub fn versions(&self) -> String {
        versions(self.from, self.to)
    }
}

/// `V19→V20` (`V?` for a version that could not be read).
pub fn versions(from: Option<i32>, to: Option<i32>) -> String {
    let v = |v: Option<i32>| format!("V{}", v.map_or("?".into(), |v| v.to_string()));
    format!("{}→{}", v(from), v(to))
}

/// `--upgrade-from PATH`: the old binary must exist (the soak builds nothing).
pub fn old_binary(path: &Path) -> anyhow::Result<PathBuf> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "--upgrade-from {}: build the old outboxd first (e.g. a git worktree of the \
             commit and cargo build --release --bin outboxd)",
            path.display()
        )
    })?;
    anyhow::ensure!(
        meta.is_file(),
        "--upgrade-from {}: not a file",
        path.display()
    );
    println!(
        "upgrade from: {} (the replicas start as it)",
        path.display()
    );
    Ok(path.to_path_buf())
}

/// Runs `bin migrate` against `db_url` (bounded by [`MIGRATE_TIMEOUT`]); how long it took,
/// or what it said when it failed.
pub async fn migrate(bin: &Path, db_url: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let run = tokio::process::Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", db_url)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(MIGRATE_TIMEOUT, run).await {
        Err(_) => return Err(format!("no answer within {}", clock::secs(MIGRATE_TIMEOUT))),
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", bin.display())),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        Ok(start.elapsed())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        let last = said.lines().rev().take(5).collect::<Vec<_>>();
        Err(format!(
            "{} ({})",
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// The schema's version: the newest migration in `outbox.schema_history`.
pub async fn schema_version(db_url: &str) -> Option<i32> {
    let client = outboxd::connect(db_url).await.ok()?;
    client
        .query_one("SELECT max(version) FROM outbox.schema_history", &[])
        .await
        .ok()?
        .get(0)
}

/// The director's upgrade step, in the rolling restart's place (see the module's comment):
/// the new binary `new` migrates the live database, then replaces every old replica. Faults:
/// the migration, then one SIGTERM per replica.
pub async fn live(
    replicas: &mut ReplicaSet,
    new: PathBuf,
    db_url: &str,
    stop: &CancellationToken,
    faults: &mut Vec<Fault>,
) -> anyhow::Result<Upgrade> {
    // A live upgrade starts from old replicas that all run.
    for i in 0..replicas.len() {
        if !replicas.is_running(i) {
            replicas.spawn(i)?;
        }
        let _ = replicas.wait_started(i, Duration::from_secs(30)).await;
    }
    let from = schema_version(db_url).await;
    let at = clock::now();
    let migrated = migrate(&new, db_url).await;
    let end = clock::now();
    let migrated_at = chrono::Utc::now();
    let to = schema_version(db_url).await;
    let mut upgrade = Upgrade {
        from,
        to,
        took: end - at,
        error: migrated.err(),
        old_readyz: Vec::new(),
        replaced: Vec::new(),
    };
    println!(
        "{} upgrade: the new binary's outboxd migrate {} {} in {} while {} old replicas run",
        clock::at(at),
        if upgrade.error.is_none() {
            "took the live database"
        } else {
            "FAILED on the live database,"
        },
        upgrade.versions(),
        clock::secs(upgrade.took),
        replicas.len()
    );
    if upgrade.error.is_none() {
        upgrade.old_readyz = old_readyz(replicas).await;
        for (replica, answer) in &upgrade.old_readyz {
            println!("  old {replica} /readyz: {answer}");
        }
    }
    faults.push(Fault {
        kind: FaultKind::Migrate { from, to },
        at,
        end,
        leased: Vec::new(),
        detail: upgrade.error.clone().unwrap_or_default(),
    });
    if upgrade.error.is_some() {
        // The new replicas would refuse a schema they do not know: the old ones stay.
        return Ok(upgrade);
    }
    // From now on, every start (an exit's restart included) runs the new binary.
    replicas.set_binary(new);
    let _ = faults::wait_until(clock::now() + OLD_ON_NEW_SCHEMA, replicas, stop).await?;
    let first = faults.len();
    faults::rolling_restart(replicas, faults, true).await?;
    for f in &faults[first..] {
        if let FaultKind::Term {
            replica,
            code,
            restarted,
            ..
        } = &f.kind
        {
            let (attempts, attempts_2xx) =
                attempts_by(db_url, replica, migrated_at, clock::wall(f.at)).await;
            upgrade.replaced.push(Replaced {
                replica: replica.clone(),
                clean: *code == Some(0) && *restarted,
                attempts,
                attempts_2xx,
            });
        }
    }
    Ok(upgrade)
}

/// Each running replica's `/readyz` answer, as `503 not ready: …`.
async fn old_readyz(replicas: &ReplicaSet) -> Vec<(String, String)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| format!("no HTTP client: {e}"));
    let mut answers = Vec::new();
    for i in 0..replicas.len() {
        let answer = match (&http, replicas.listen_addr(i)) {
            (Err(e), _) => e.clone(),
            (Ok(_), None) => "no listener seen".into(),
            (Ok(http), Some(addr)) => readyz(http, &format!("http://{addr}/readyz")).await,
        };
        answers.push((replicas.name(i).to_owned(), answer));
    }
    answers
}

/// `200 ready`, `503 not ready: …` or why there was no answer.
async fn readyz(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Err(e) => format!("no answer: {e}"),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            format!("{status} {}", text.trim())
        }
    }
}

/// (attempts, 2xx answers) recorded under `replica`'s name with `started_at` in
/// `[from, until)`; zeros when the database cannot say.
async fn attempts_by(
    db_url: &str,
    replica: &str,
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> (i64, i64) {
    let Ok(client) = outboxd::connect(db_url).await else {
        return (0, 0);
    };
    client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status_code BETWEEN 200 AND 299)
               FROM outbox.attempts
              WHERE replica = $1 AND started_at >= $2 AND started_at < $3",
            &[&replica, &from, &until],
        )
        .await
        .map_or((0, 0), |row| (row.get(0), row.get(1)))
}
