//! The metric types (counter, gauge, histogram), families of them keyed by
//! label values with a bound on how many series a family may hold, and the
//! Prometheus text exposition format (0.0.4) they render to.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// Series one family may hold; label values past it are folded into one
/// series whose every label is `_other`, so a bug cannot grow memory or a
/// scrape without bound.
pub const MAX_SERIES: usize = 2_000;
const OVERFLOW: &str = "_other";

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A counter kept in whole small units and shown in a base unit, exactly:
/// milliseconds counted, seconds shown (`per_base_unit` 1000).
#[derive(Debug)]
pub struct ScaledCounter {
    units: AtomicU64,
    per_base_unit: u64,
}

impl ScaledCounter {
    pub fn new(per_base_unit: u64) -> Self {
        ScaledCounter {
            units: AtomicU64::new(0),
            per_base_unit,
        }
    }

    pub fn inc_by(&self, units: u64) {
        self.units.fetch_add(units, Relaxed);
    }

    /// The count in small units.
    pub fn get_units(&self) -> u64 {
        self.units.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Observations counted into fixed buckets (seconds, or any unit), with
/// their sum. The sum is kept in millionths so it can be atomic.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_millionths: AtomicU64,
}

/// Latency buckets in seconds, 100 µs to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];
/// Buckets for counts such as requests per commit.
pub const SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_millionths: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let value = value.max(0.0);
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_millionths
            .fetch_add((value * 1e6).round() as u64, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// What a family renders, per series.
pub trait Metric: Send + Sync {
    const TYPE: &'static str;
    fn new_series(&self) -> Self
    where
        Self: Sized;
    fn render(&self, name: &str, labels: &str, out: &mut String);
}

impl Metric for Counter {
    const TYPE: &'static str = "counter";
    fn new_series(&self) -> Self {
        Counter::default()
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Metric for ScaledCounter {
    const TYPE: &'static str = "counter";
    fn new_series(&self) -> Self {
        ScaledCounter::new(self.per_base_unit)
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let value = self.get_units() as f64 / self.per_base_unit as f64;
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

impl Metric for Gauge {
    const TYPE: &'static str = "gauge";
    fn new_series(&self) -> Self {
        Gauge::default()
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let _ = writeln!(out, "{name}{labels} {}", self.get());
    }
}

impl Metric for Histogram {
    const TYPE: &'static str = "histogram";
    fn new_series(&self) -> Self {
        Histogram::new(self.bounds)
    }
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        // `le` joins the series' own labels.
        let with_le = |le: &str| match labels {
            "" => format!("{{le=\"{le}\"}}"),
            _ => format!("{},le=\"{le}\"}}", &labels[..labels.len() - 1]),
        };
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                with_le(&bound.to_string())
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{} {count}", with_le("+Inf"));
        let sum = self.sum_millionths.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {count}");
    }
}

/// One metric name with its help text and a series per label-value set.
pub struct Family<M: Metric> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    /// A fresh series is made from this one, so histograms keep their bounds.
    template: M,
    series: RwLock<BTreeMap<Vec<String>, Arc<M>>>,
}

impl<M: Metric> Family<M> {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        template: M,
    ) -> Self {
        Family {
            name,
            help,
            labels,
            template,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    /// The series for these label values (in the family's label order),
    /// made on first use.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        if let Some(series) = self.series.read().unwrap().get(&key) {
            return series.clone();
        }
        let mut series = self.series.write().unwrap();
        let key = if series.len() >= MAX_SERIES && !series.contains_key(&key) {
            vec![OVERFLOW.to_owned(); self.labels.len()]
        } else {
            key
        };
        series
            .entry(key)
            .or_insert_with(|| Arc::new(self.template.new_series()))
            .clone()
    }

    /// Drops every series (for gauges refreshed from scratch at each scrape).
    pub fn clear(&self) {
        self.series.write().unwrap().clear();
    }

    /// Every series, with its label values (in the family's label order).
    pub fn series(&self) -> Vec<(Vec<String>, Arc<M>)> {
        self.series
            .read()
            .unwrap()
            .iter()
            .map(|(values, series)| (values.clone(), series.clone()))
            .collect()
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, M::TYPE);
        for (values, series) in self.series.read().unwrap().iter() {
            let labels = if values.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = self
                    .labels
                    .iter()
                    .zip(values)
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                format!("{{{}}}", pairs.join(","))
            };
            series.render(self.name, &labels, out);
        }
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let family = Family::new("t_seconds", "test", &["f"], Histogram::new(&[0.1, 1.0]));
        let h = family.with(&["a\"b"]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_seconds test\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{f=\"a\\\"b\",le=\"0.1\"} 1\n\
             t_seconds_bucket{f=\"a\\\"b\",le=\"1\"} 2\n\
             t_seconds_bucket{f=\"a\\\"b\",le=\"+Inf\"} 3\n\
             t_seconds_sum{f=\"a\\\"b\"} 5.55\n\
             t_seconds_count{f=\"a\\\"b\"} 3\n"
        );
    }

    #[test]
    fn series_past_the_bound_fold_into_one() {
        let family = Family::new("t_total", "test", &["k"], Counter::default());
        for i in 0..MAX_SERIES + 10 {
            family.with(&[&i.to_string()]).inc();
        }
        assert_eq!(family.with(&["another"]).get(), 10);
        assert_eq!(family.series.read().unwrap().len(), MAX_SERIES + 1);
    }
}
