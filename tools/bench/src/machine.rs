//! What the report says about the machine: its size, the source revision, the load, and the
//! CPU every process on it used (to tell the run's own cost from other work).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

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
    /// The facts now; `outboxd` is the binary the sidecars run.
    pub fn read(outboxd: &Path) -> Machine {
        let mem_kb = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let outboxd_built = fs::metadata(outboxd)
            .ok()
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

/// Clock ticks per second, the unit of `/proc/stat`.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}
