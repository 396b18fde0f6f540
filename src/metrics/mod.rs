//! Prometheus text exposition, on loopback by default.
//!
//! Typed and bounded (GUIDE habit 8): metric names are constants here, and every label value
//! comes from a closed set (jail and source names from the config, rule ids from the built-in
//! tables, detector names from code), never from input; no address is ever a label. The
//! worker owns the numbers and renders them on request, so a scrape sees one consistent
//! snapshot without locks on the hot path. The HTTP side is deliberately tiny: GET /metrics,
//! bounded request size, a timeout and a cap on concurrent connections.

pub mod http;

use std::fmt::Write as _;

/// Upper bounds (seconds) of the enforcement latency histogram.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A fixed-bucket histogram.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Record one value (seconds).
    pub fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS.len()];
        }
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// Builds one exposition text. Families are declared once (HELP/TYPE) then sampled.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// Escape a label value (the values are bounded, but quotes and backslashes stay legal).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    /// Declare a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// A whole histogram family with one series.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> &mut Self {
        self.family(name, "histogram", help);
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let c = h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(self.text, "{name}_sum {}\n{name}_count {}", h.sum, h.count);
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format_is_prometheus_text() {
        let mut h = Histogram::default();
        h.observe(0.0015);
        h.observe(3.0);
        let mut e = Exposition::default();
        e.family("ravelin_bans_total", "counter", "Bans issued.")
            .sample("ravelin_bans_total", &[("jail", "ss\"hd")], 3.0);
        e.histogram("ravelin_enforce_seconds", "Enforcement latency.", &h);
        let t = e.finish();
        assert!(
            t.contains(
                "# TYPE ravelin_bans_total counter\nravelin_bans_total{jail=\"ss\\\"hd\"} 3\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("ravelin_enforce_seconds_bucket{le=\"0.001\"} 0\n"),
            "{t}"
        );
        assert!(
            t.contains("ravelin_enforce_seconds_bucket{le=\"0.002\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("ravelin_enforce_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("ravelin_enforce_seconds_count 2\n"), "{t}");
    }
}
