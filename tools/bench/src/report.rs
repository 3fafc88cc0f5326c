//! Figures, targets and output: percentiles, the printed table, the JSON file.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

/// Latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From samples in nanoseconds (sorted in place).
    pub fn from_ns(samples: &mut [u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Latency {
            count: samples.len(),
            p50_ms: ms(percentile(samples, 50.0)),
            p90_ms: ms(percentile(samples, 90.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples[samples.len() - 1]),
            mean_ms: sum as f64 / samples.len() as f64 / 1e6,
        }
    }

    pub fn short(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {} / p99 {} / max {} ms",
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.max_ms)
        )
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// `12 345`-style thousands separators for the table.
pub fn fmt_int(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// One printed line: a figure, optionally with its target and whether it is met.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

/// The result of one scenario: table rows, JSON details, correctness failures.
#[derive(Debug, Default)]
pub struct ScenarioReport {
    pub name: String,
    pub title: String,
    pub rows: Vec<Row>,
    pub details: serde_json::Map<String, Value>,
    /// Correctness failures (order violation, bad signature, lost event, ...): exit non-zero.
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

impl ScenarioReport {
    pub fn new(name: &str, title: &str) -> ScenarioReport {
        ScenarioReport {
            name: name.into(),
            title: title.into(),
            ..ScenarioReport::default()
        }
    }

    pub fn row(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: None,
            ok: None,
        });
    }

    /// A figure next to its target; `ok = None` when the target could not be evaluated.
    pub fn target(
        &mut self,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        ok: Option<bool>,
    ) {
        self.rows.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: Some(target.into()),
            ok,
        });
    }

    pub fn section(&mut self, title: impl Into<String>) {
        self.rows.push(Row {
            metric: format!("-- {}", title.into()),
            value: String::new(),
            target: None,
            ok: None,
        });
    }

    pub fn detail(&mut self, key: &str, value: impl Serialize) {
        let v = serde_json::to_value(value).unwrap_or(Value::Null);
        self.details.insert(key.into(), v);
    }

    pub fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    pub fn print(&self) {
        println!();
        println!("=== {} — {}", self.name, self.title);
        let w_metric = self
            .rows
            .iter()
            .filter(|r| !r.metric.starts_with("-- "))
            .map(|r| r.metric.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let w_value = self
            .rows
            .iter()
            .map(|r| r.value.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        println!(
            "{:<w_metric$}  {:>w_value$}  target",
            "metric",
            "value",
            w_metric = w_metric,
            w_value = w_value
        );
        println!("{}", "-".repeat(w_metric + w_value + 24));
        for r in &self.rows {
            if r.metric.starts_with("-- ") {
                println!("{}", r.metric);
                continue;
            }
            let target = match (&r.target, r.ok) {
                (Some(t), Some(true)) => format!("{t}  ✓"),
                (Some(t), Some(false)) => format!("{t}  ✗"),
                (Some(t), None) => format!("{t}  (not measured)"),
                (None, _) => String::new(),
            };
            println!(
                "{:<w_metric$}  {:>w_value$}  {}",
                r.metric,
                r.value,
                target,
                w_metric = w_metric,
                w_value = w_value
            );
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        if self.failures.is_empty() {
            println!("correctness: ok");
        } else {
            for f in &self.failures {
                println!("CORRECTNESS FAILURE: {f}");
            }
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.name,
            "title": self.title,
            "table": self.rows,
            "details": self.details,
            "failures": self.failures,
            "notes": self.notes,
        })
    }
}

pub fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn thousands() {
        assert_eq!(fmt_int(1234567.0), "1 234 567");
        assert_eq!(fmt_int(999.0), "999");
    }
}
