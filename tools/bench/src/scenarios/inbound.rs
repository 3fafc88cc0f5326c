//! Scenario 9, inbound webhooks (issue 12): a third party's requests accepted by outboxd's
//! inbound listener, with the floor measured in the same run. The load comes from wrk and a
//! standard-library Python client driven by `tools/bench/inbound.sh`, which starts its own
//! PostgreSQL with fsync **on** whatever `--unsafe-fast` says: the bars are set at production
//! durability. This scenario runs the script's steps and turns its `step: key=value …` lines
//! into the report.
//!
//! * saturate: 64 connections as fast as answered, a verified GitHub signature over a
//!   1 KiB body; bar ≥ 5 000 accepted/s.
//! * rate: about 1 000 requests/s (16 paced connections); bar p99 < 10 ms.
//! * floor: the same requests to an unknown source (404: HTTP only, no verification, no
//!   database): what the listener and wrk cost alone.
//! * burst (`--inbound-burst N`, 0 to skip): N requests from 200 connections at once; every
//!   answer 2xx or a deliberate 429/503, everything acknowledged stored and relayed in order.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::ctx::Ctx;
use crate::report::{ScenarioReport, fmt_bytes, fmt_int};

/// The script, next to this crate's manifest.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/inbound.sh");

/// One step's figures: `saturate: connections=64 per_second=8353 …`.
type Figures = BTreeMap<String, String>;

pub async fn scenario(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let burst = ctx.opts.inbound_burst;
    let mut r = ScenarioReport::new(
        "inbound",
        "9. inbound webhooks: accepted/s, acknowledgement latency, burst, vs the listener's floor",
    );
    let mut steps = vec!["saturate", "rate", "floor"];
    if burst > 0 {
        steps.push("burst");
    }
    let out = run_script(&ctx.outboxd, &steps, burst).await?;
    let steps = parse(&out.stdout);
    r.detail("script_output", out.stdout.lines().collect::<Vec<_>>());
    let num = |step: &str, key: &str| -> Option<f64> {
        steps
            .get(step)
            .and_then(|f| f.get(key))
            .and_then(|v| v.trim_end_matches("ms").parse().ok())
    };
    let ms = |step: &str, key: &str| -> Option<f64> {
        let v = steps.get(step)?.get(key)?;
        parse_duration_ms(v)
    };

    r.section("saturate: 64 connections, GitHub HMAC verified, 1 KiB bodies, fsync on");
    let accepted = num("saturate", "per_second");
    r.target(
        "accepted requests/s",
        accepted.map_or("?".into(), fmt_int),
        "≥ 5 000",
        accepted.map(|a| a >= 5_000.0),
    );
    r.row(
        "acknowledgement p50 / p99",
        format!(
            "{} / {}",
            steps_value(&steps, "saturate", "p50"),
            steps_value(&steps, "saturate", "p99")
        ),
    );
    let floor = num("floor", "per_second");
    if let (Some(a), Some(f)) = (accepted, floor) {
        r.row(
            "floor (404, no verification, no database) answered/s; accepted / floor",
            format!("{} ; {:.1} %", fmt_int(f), 100.0 * a / f.max(1.0)),
        );
    }
    for (key, label) in [
        ("outboxd_cpu_us_per_request", "outboxd CPU per request"),
        ("postgres_cpu_us_per_request", "PostgreSQL CPU per request"),
    ] {
        if let Some(v) = num("saturate", key) {
            r.row(label, format!("{v:.0} µs"));
        }
    }
    if let Some(w) = num("saturate", "wal_bytes_per_request") {
        r.row("WAL per request", fmt_bytes(w));
    }
    r.row(
        "group commit: mean batch / mean commit / mean fsync",
        format!(
            "{} requests / {} ms / {} ms",
            steps_value(&steps, "saturate", "mean_batch"),
            steps_value(&steps, "saturate", "mean_commit_ms"),
            steps_value(&steps, "saturate", "mean_fsync_ms")
        ),
    );

    r.section("rate: about 1 000 requests/s from 16 paced connections");
    let rate = num("rate", "per_second");
    r.row("answered requests/s", rate.map_or("?".into(), fmt_int));
    let p99 = ms("rate", "p99");
    r.target(
        "acknowledgement p99",
        steps_value(&steps, "rate", "p99"),
        "< 10 ms",
        p99.map(|p| p < 10.0 && rate.is_some_and(|r| r >= 900.0)),
    );

    if burst > 0 {
        r.section(format!(
            "burst: {} requests from 200 connections",
            fmt_int(burst as f64)
        ));
        for line in out.stdout.lines().filter(|l| l.starts_with("burst")) {
            r.note(line.to_owned());
        }
    }
    for (step, f) in &steps {
        if let (Some(ok), Some(stored)) = (f.get("2xx"), f.get("stored"))
            && step != "floor"
            && stored.parse::<u64>().unwrap_or(0) < ok.parse::<u64>().unwrap_or(0)
        {
            r.fail(format!("{step}: {ok} acknowledged but {stored} stored"));
        }
    }
    if !out.success {
        r.fail(format!(
            "tools/bench/inbound.sh failed: {}",
            out.stderr.lines().last().unwrap_or("no message")
        ));
    }
    r.note("load and PostgreSQL from tools/bench/inbound.sh (its own cluster, fsync on, whatever --unsafe-fast says)");
    Ok(r)
}

struct ScriptOutput {
    stdout: String,
    stderr: String,
    success: bool,
}

async fn run_script(outboxd: &Path, steps: &[&str], burst: u64) -> anyhow::Result<ScriptOutput> {
    let out = tokio::process::Command::new("bash")
        .arg(SCRIPT)
        .arg("--bin")
        .arg(outboxd)
        .args(steps)
        .env("BURST", burst.to_string())
        .output()
        .await
        .with_context(|| {
            format!("running {SCRIPT} (it needs bash, wrk, python3, openssl, psql)")
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    Ok(ScriptOutput {
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    })
}

/// `step: key=value key=value …` lines, the first line per step with figures.
fn parse(stdout: &str) -> BTreeMap<String, Figures> {
    let mut steps = BTreeMap::new();
    for line in stdout.lines() {
        let Some((step, rest)) = line.split_once(": ") else {
            continue;
        };
        let figures: Figures = rest
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if figures.contains_key("per_second") {
            steps.entry(step.to_owned()).or_insert(figures);
        }
    }
    steps
}

fn steps_value(steps: &BTreeMap<String, Figures>, step: &str, key: &str) -> String {
    steps
        .get(step)
        .and_then(|f| f.get(key))
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// wrk's latencies: `677.00us`, `7.09ms`, `1.20s`.
fn parse_duration_ms(v: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_lines_and_wrks_durations() {
        let out = "# header\nrate: pacing: naive pause 16 ms\n\
                   saturate: connections=64 per_second=8353 p99=25.78ms 2xx=10 stored=10\n\
                   saturate: outboxd backends waiting (samples every 10 ms): CPU=2232\n\
                   floor: per_second=83908 p99=2.46ms\n";
        let steps = parse(out);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps["saturate"]["per_second"], "8353");
        assert_eq!(parse_duration_ms("677.00us"), Some(0.677));
        assert_eq!(parse_duration_ms("25.78ms"), Some(25.78));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500.0));
        assert_eq!(parse_duration_ms("n/a"), None);
    }
}
