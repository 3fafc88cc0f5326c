//! The sidecar of a run: the test kit's process handle ([`testkit::Sidecar`]) running
//! `outboxd run` with the bench's settings, and the figures the report takes from it when it
//! stops ([`SidecarStats`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use testkit::Sidecar;

/// What every run's sidecar is started with, before the run's own settings. The log level is
/// set here, so a `RUST_LOG` in the caller's shell does not change what a run costs.
const DEFAULTS: [(&str, &str); 5] = [
    ("OUTBOXD_LISTEN", "127.0.0.1:0"),
    ("OUTBOXD_ALLOW_NETWORKS", "127.0.0.0/8"),
    ("OUTBOXD_LOG_FORMAT", "json"),
    ("OUTBOXD_LOG", "info"),
    ("OUTBOXD_SHUTDOWN_GRACE", "5s"),
];

/// The counters of `/metrics` the report keeps.
const KEPT_METRICS: [&str; 5] = [
    "outboxd_db_errors_total",
    "outboxd_leases_rescued_total",
    "outboxd_events_routed_total",
    "outboxd_deliveries_created_total",
    "outboxd_deliveries_dead",
];

/// How long the sidecar may take to start, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(15);

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

/// Spawns `outboxd run` against `db_url` with the bench's defaults plus `envs`, logging to
/// `log`, and waits until it logs that it started. It dies with the bench (SIGKILL when the
/// spawning runtime thread ends).
pub async fn start(
    bin: &Path,
    db_url: &str,
    envs: &[(String, String)],
    log: PathBuf,
) -> anyhow::Result<Sidecar> {
    let mut sidecar = Sidecar::command(bin)
        .arg("run")
        .database_url(db_url)
        .envs(DEFAULTS)
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .log_to(log)
        .kill_with_parent()
        .spawn()
        .context("starting outboxd")?;
    sidecar
        .wait_started(START_TIMEOUT)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(sidecar)
}

/// CPU seconds the sidecar used so far (NaN once it is gone).
pub fn cpu_seconds(sidecar: &Sidecar) -> f64 {
    sidecar.cpu_seconds().unwrap_or(f64::NAN)
}

/// Its resident memory now, in MB (NaN once it is gone).
pub fn rss_mb(sidecar: &Sidecar) -> f64 {
    sidecar
        .rss_kib()
        .map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

/// Reads CPU (since `cpu_at_start`), peak RSS and the kept metrics, then SIGTERM (SIGKILL
/// after 15 s).
pub async fn stop(mut sidecar: Sidecar, cpu_at_start: f64) -> SidecarStats {
    let mut stats = SidecarStats {
        cpu_seconds: cpu_seconds(&sidecar) - cpu_at_start,
        peak_rss_mb: sidecar
            .peak_rss_kib()
            .map_or(f64::NAN, |kib| kib as f64 / 1024.0),
        log: sidecar.log_path().display().to_string(),
        metrics: kept_metrics(&sidecar).await,
        exit: String::new(),
    };
    stats.exit = match sidecar.terminate(STOP_GRACE).await {
        Some(status) => status.to_string(),
        None => "killed after 15 s".into(),
    };
    stats
}

/// The [`KEPT_METRICS`] series of its `/metrics` (none if it cannot be read).
async fn kept_metrics(sidecar: &Sidecar) -> BTreeMap<String, f64> {
    let Some(listen) = sidecar.listen_addr() else {
        return BTreeMap::new();
    };
    let Ok(text) = sidecar.metrics(listen).await else {
        return BTreeMap::new();
    };
    keep_metrics(testkit::parse_metrics(&text))
}

fn keep_metrics(all: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    all.into_iter()
        .filter(|(name, _)| KEPT_METRICS.contains(&name.split('{').next().unwrap_or(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_listed_counters_with_their_labels() {
        let all = testkit::parse_metrics(
            "outboxd_db_errors_total 2\noutboxd_deliveries_dead{endpoint=\"3\"} 1\n\
             outboxd_deliveries_dead_letters 9\noutboxd_claims_total 5\n",
        );
        let kept = keep_metrics(all);
        assert_eq!(
            kept.into_iter().collect::<Vec<_>>(),
            [
                ("outboxd_db_errors_total".to_owned(), 2.0),
                ("outboxd_deliveries_dead{endpoint=\"3\"}".to_owned(), 1.0),
            ]
        );
    }
}
