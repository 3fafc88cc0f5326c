//! The Prometheus text format (version 0.0.4) for the families a replica renders itself at
//! scrape time ([`super::endpoints`], [`super::database`] and the admin API's `/metrics`):
//! one `# HELP` and `# TYPE` per family, then its samples; label values escaped. Pure.

use std::fmt::Write as _;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A histogram with fixed bucket bounds (seconds), as Prometheus renders it: cumulative
/// `_bucket{le=…}` counts, `_sum` and `_count`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The text of a scrape, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its help text and type. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series of the current family.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (i, n) in h.counts.iter().enumerate() {
            cumulative += n;
            let le = match h.bounds.get(i) {
                Some(b) => number(*b),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let _ = write!(self.text, "{name}_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(h.sum));
        let _ = write!(self.text, "{name}_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", h.count);
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// A sample value: whole numbers without a fraction, `NaN`, `+Inf`, `-Inf`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.\nCounted.");
        e.sample("x_total", &[("a", "q\"u\\o\nte")], 3.0);
        e.single("y", Kind::Gauge, "A gauge.", 0.25);
        assert_eq!(
            e.into_string(),
            "# HELP x_total Things. Counted.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"u\\\\o\\nte\"} 3\n\
             # HELP y A gauge.\n# TYPE y gauge\ny 0.25\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        static B: &[f64] = &[0.125, 1.0];
        let mut h = Histogram::new(B);
        for v in [0.0625, 0.125, 0.5, 7.0, f64::NAN] {
            h.observe(v);
        }
        let mut e = Exposition::default();
        e.histogram("d_seconds", &[("endpoint_id", "3")], &h);
        assert_eq!(
            e.into_string(),
            "d_seconds_bucket{endpoint_id=\"3\",le=\"0.125\"} 3\n\
             d_seconds_bucket{endpoint_id=\"3\",le=\"1\"} 4\n\
             d_seconds_bucket{endpoint_id=\"3\",le=\"+Inf\"} 5\n\
             d_seconds_sum{endpoint_id=\"3\"} 7.6875\n\
             d_seconds_count{endpoint_id=\"3\"} 5\n"
        );
    }
}
