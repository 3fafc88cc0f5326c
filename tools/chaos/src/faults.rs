//! The faults: their schedule ([`timeline`]), the director that carries it out against the
//! replicas and PostgreSQL ([`direct`]), and the record of each fault the checks read
//! ([`Fault`]). The receivers' bad phases are scheduled by [`crate::receiver::flap`] instead.
//! With `--upgrade-from`, the rolling restart is the live upgrade ([`crate::upgrade`]).

use std::path::PathBuf;
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use testkit::{Cluster, Restart};
use tokio_util::sync::CancellationToken;

use crate::receiver::Mode;
use crate::replicas::ReplicaSet;
use crate::upgrade::{self, Upgrade};
use crate::{RESPAWN_GAP, SHUTDOWN_GRACE, clock};

#[derive(Debug, Clone)]
pub enum FaultKind {
    Kill {
        replicas: Vec<String>,
    },
    Term {
        replica: String,
        code: Option<i32>,
        shutdown_time: Option<Duration>,
        /// Part of the live upgrade: the replica was replaced by the new binary.
        upgrade: bool,
        /// The process started in its place logged "outboxd started" within 30 s.
        restarted: bool,
    },
    /// The new binary's `outboxd migrate` on the live database (`--upgrade-from`).
    Migrate {
        /// The schema's version before and after it (`outbox.schema_history`).
        from: Option<i32>,
        to: Option<i32>,
    },
    PgRestart {
        immediate: bool,
    },
    Receiver {
        receiver: usize,
        mode: Mode,
    },
}

impl FaultKind {
    pub fn label(&self) -> String {
        match self {
            FaultKind::Kill { replicas } if replicas.len() > 1 => {
                format!("SIGKILL x{}", replicas.len())
            }
            FaultKind::Kill { .. } => "SIGKILL".into(),
            FaultKind::Term { upgrade: false, .. } => "SIGTERM (rolling)".into(),
            FaultKind::Term { upgrade: true, .. } => "SIGTERM (upgrade)".into(),
            FaultKind::Migrate { .. } => "migrate (upgrade)".into(),
            FaultKind::PgRestart { immediate: false } => "PostgreSQL restart (fast)".into(),
            FaultKind::PgRestart { immediate: true } => "PostgreSQL restart (immediate)".into(),
            FaultKind::Receiver { mode, .. } => format!("receiver {}", mode.name()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    pub at: Duration,
    pub end: Duration,
    /// Kills: (endpoint id, event_id) of the deliveries the killed replicas held.
    pub leased: Vec<(i64, String)>,
    pub detail: String,
}

/// A scheduled fault.
#[derive(Debug, Clone)]
pub enum Action {
    Kill { slots: Vec<usize>, down: Duration },
    Rolling,
    PgRestart { immediate: bool },
}

/// The fault schedule: PostgreSQL restarts at 1/3 (fast) and 72 % (immediate) of the run, a
/// rolling SIGTERM restart at half time (the live upgrade, with `--upgrade-from`), one "every
/// replica dies at once" near the end, and single (sometimes double) SIGKILLs every 4–9 s in
/// between.
pub fn timeline(
    rng: &mut StdRng,
    t0: Duration,
    chaos: Duration,
    n: usize,
) -> Vec<(Duration, Action)> {
    let at = |f: f64| t0 + chaos.mul_f64(f);
    let mut v = vec![
        (at(0.33), Action::PgRestart { immediate: false }),
        (at(0.50), Action::Rolling),
        (at(0.72), Action::PgRestart { immediate: true }),
        (
            at(0.86),
            Action::Kill {
                slots: (0..n).collect(),
                down: Duration::from_millis(1500),
            },
        ),
    ];
    let mut t = t0 + Duration::from_secs(4);
    while t + Duration::from_secs(3) < t0 + chaos {
        let first = rng.random_range(0..n);
        let mut slots = vec![first];
        if rng.random_bool(0.2) {
            slots.push((first + rng.random_range(1..n)) % n);
        }
        v.push((
            t,
            Action::Kill {
                slots,
                down: Duration::from_millis(rng.random_range(300..2500)),
            },
        ));
        t += Duration::from_millis(rng.random_range(4000..9000));
    }
    v.sort_by_key(|(t, _)| *t);
    v
}

/// What the director leaves: the replicas, the faults it caused, and the live upgrade's
/// record (with `--upgrade-from`, once its turn came).
pub struct Directed {
    pub replicas: ReplicaSet,
    pub faults: Vec<Fault>,
    pub upgrade: Option<Upgrade>,
}

/// Runs the schedule (one fault at a time), restarting replicas that exit on their own, until
/// `stop`; then makes sure every replica runs again. With `upgrade_to` (the new binary; the
/// replicas run the old one), the rolling restart is the live upgrade instead.
pub async fn direct(
    timeline: Vec<(Duration, Action)>,
    mut replicas: ReplicaSet,
    pg: &mut Cluster,
    db_url: &str,
    mut upgrade_to: Option<PathBuf>,
    stop: CancellationToken,
) -> anyhow::Result<Directed> {
    let mut faults = Vec::new();
    let mut upgraded = None;
    let mut db: Option<tokio_postgres::Client> = None;
    for (due, action) in timeline {
        if !wait_until(due, &mut replicas, &stop).await? {
            break;
        }
        match action {
            Action::Kill { slots, down } => {
                faults.push(kill(&mut replicas, &slots, down, &mut db, db_url).await?);
            }
            Action::Rolling => match upgrade_to.take() {
                Some(new) => {
                    let step = upgrade::live(&mut replicas, new, db_url, &stop, &mut faults);
                    upgraded = Some(step.await?);
                }
                None => rolling_restart(&mut replicas, &mut faults, false).await?,
            },
            Action::PgRestart { immediate } => {
                faults.push(restart_postgres(pg, immediate).await?);
                db = None;
            }
        }
    }
    // After the schedule: keep replicas alive until told to stop.
    while !stop.is_cancelled() {
        replicas.restart_exited(RESPAWN_GAP)?;
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    replicas.restart_exited(Duration::ZERO)?;
    for i in 0..replicas.len() {
        // One that does not start is recorded, and started again by whoever looks next.
        let _ = replicas.wait_started(i, Duration::from_secs(30)).await;
    }
    Ok(Directed {
        replicas,
        faults,
        upgrade: upgraded,
    })
}

/// Restarts replicas that exited on their own until `due`; false if `stop` came first.
pub async fn wait_until(
    due: Duration,
    replicas: &mut ReplicaSet,
    stop: &CancellationToken,
) -> anyhow::Result<bool> {
    loop {
        if stop.is_cancelled() {
            return Ok(false);
        }
        for name in replicas.restart_exited(RESPAWN_GAP)? {
            println!(
                "{} replica {name} had exited on its own; started it again",
                clock::at(clock::now())
            );
        }
        let now = clock::now();
        if now >= due {
            return Ok(true);
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(false),
            _ = tokio::time::sleep((due - now).min(Duration::from_millis(100))) => {}
        }
    }
}

/// SIGKILLs the replicas in `slots` that run, notes what they held (through `db`, the
/// director's own connection, made again after PostgreSQL restarted), restarts them after
/// `down`.
async fn kill(
    replicas: &mut ReplicaSet,
    slots: &[usize],
    down: Duration,
    db: &mut Option<tokio_postgres::Client>,
    db_url: &str,
) -> anyhow::Result<Fault> {
    let at = clock::now();
    let mut names = Vec::new();
    for &i in slots {
        if replicas.is_running(i) {
            replicas.kill9(i);
            names.push(replicas.name(i).to_owned());
        }
    }
    // A COMMIT the dead replica sent just before dying still completes: give it a
    // moment, so that "held" means held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leased = leased_by(db, db_url, &names).await;
    println!(
        "{} SIGKILL {} ({} deliveries leased), restart in {}",
        clock::at(at),
        names.join("+"),
        leased.as_ref().map_or("?".into(), |l| l.len().to_string()),
        clock::secs(down)
    );
    tokio::time::sleep(down).await;
    for &i in slots {
        if !replicas.is_running(i) {
            replicas.spawn(i)?;
        }
    }
    Ok(Fault {
        kind: FaultKind::Kill { replicas: names },
        at,
        end: clock::now(),
        leased: leased.unwrap_or_default(),
        detail: String::new(),
    })
}

/// SIGTERMs each replica in turn and starts it again (with the binary the set runs now: the
/// new one when this is the live `upgrade`); one fault each.
pub async fn rolling_restart(
    replicas: &mut ReplicaSet,
    faults: &mut Vec<Fault>,
    upgrade: bool,
) -> anyhow::Result<()> {
    for i in 0..replicas.len() {
        // A rolling restart stops running replicas: one that was just restarted
        // after a SIGKILL first finishes starting (outboxd installs its SIGTERM
        // handler only once started; see RELIABILITY.md, "found, not fixed").
        if !replicas.is_running(i) {
            replicas.spawn(i)?;
        }
        let _ = replicas.wait_started(i, Duration::from_secs(30)).await;
        let at = clock::now();
        let rec = replicas
            .term(i, SHUTDOWN_GRACE + Duration::from_secs(10))
            .await;
        println!(
            "{} SIGTERM {} ({}): {} after {}",
            clock::at(at),
            rec.replica,
            if upgrade {
                "upgrade: a new-binary replica takes its place"
            } else {
                "rolling restart"
            },
            rec.status,
            rec.shutdown_time.map_or("?".into(), clock::secs)
        );
        replicas.spawn(i)?;
        let started = replicas
            .wait_started(i, Duration::from_secs(30))
            .await
            .is_ok();
        faults.push(Fault {
            kind: FaultKind::Term {
                replica: rec.replica.clone(),
                code: rec.code,
                shutdown_time: rec.shutdown_time,
                upgrade,
                restarted: started,
            },
            at,
            end: clock::now(),
            leased: Vec::new(),
            detail: if started {
                String::new()
            } else {
                "the new process did not log 'outboxd started' within 30 s".into()
            },
        });
    }
    Ok(())
}

async fn restart_postgres(pg: &mut Cluster, immediate: bool) -> anyhow::Result<Fault> {
    let (how, restart) = if immediate {
        ("immediate", Restart::Immediate)
    } else {
        ("fast", Restart::Fast)
    };
    let at = clock::now();
    let result = pg.restart(restart).await;
    let end = clock::now();
    result?;
    println!(
        "{} PostgreSQL restart ({how}): down for {}",
        clock::at(at),
        clock::secs(end - at)
    );
    Ok(Fault {
        kind: FaultKind::PgRestart { immediate },
        at,
        end,
        leased: Vec::new(),
        detail: String::new(),
    })
}

/// (endpoint id, event_id) of the deliveries of application events (not relayed inbound
/// requests) leased by `names` right now.
async fn leased_by(
    db: &mut Option<tokio_postgres::Client>,
    url: &str,
    names: &[String],
) -> Option<Vec<(i64, String)>> {
    for _ in 0..2 {
        if db.as_ref().is_none_or(|c| c.is_closed()) {
            *db = outboxd::connect(url).await.ok();
        }
        let c = db.as_ref()?;
        match c
            .query(
                "SELECT d.endpoint_id, e.event_id FROM outbox.deliveries d
                   JOIN outbox.events e ON e.id = d.event_pk
                  WHERE d.state = 'delivering' AND d.leased_by = ANY($1)
                    AND e.request_id IS NULL",
                &[&names],
            )
            .await
        {
            Ok(rows) => return Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
            Err(_) => *db = None,
        }
    }
    None
}
