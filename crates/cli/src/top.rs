//! `nimbus top`: a live view of a running app in the terminal, from its
//! `/metrics`: per function the rate of invocations, errors and throttles,
//! their mean latency and how many run now; per queue the backlog.

use crate::queue::AdminArgs;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One scrape: every sample by its series (`name{labels}`), parsed.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Scrape { samples }
    }

    /// Samples of metric `name`, each with its labels.
    fn of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (BTreeMap<&'a str, &'a str>, f64)> + 'a {
        self.samples.iter().filter_map(move |(series, value)| {
            let rest = series.strip_prefix(name)?;
            let labels = match rest {
                "" => BTreeMap::new(),
                _ => labels(rest.strip_prefix('{')?.strip_suffix('}')?),
            };
            Some((labels, *value))
        })
    }

    /// The sum of `name`'s samples whose label `key` is `value`, and whose
    /// other labels match `extra`.
    fn sum(&self, name: &str, key: &str, value: &str, extra: &[(&str, &str)]) -> f64 {
        self.of(name)
            .filter(|(l, _)| l.get(key) == Some(&value))
            .filter(|(l, _)| extra.iter().all(|(k, v)| l.get(k) == Some(v)))
            .map(|(_, v)| v)
            // A fold from +0: an empty `sum()` of floats is -0, shown as "-0".
            .fold(0.0, |a, b| a + b)
    }
}

/// `a="x",b="y"` (values without escaped quotes, as Nimbus's names are).
fn labels(text: &str) -> BTreeMap<&str, &str> {
    text.split("\",")
        .filter_map(|pair| {
            let (k, v) = pair.split_once("=\"")?;
            Some((k, v.trim_end_matches('"')))
        })
        .collect()
}

/// The frame shown for two scrapes `elapsed` apart.
fn render(admin: &str, before: &Scrape, now: &Scrape, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut functions: Vec<&str> = now
        .of("nimbus_invocations_total")
        .filter_map(|(l, _)| l.get("function").copied())
        .chain(
            now.of("nimbus_concurrent_executions")
                .filter_map(|(l, _)| l.get("function").copied()),
        )
        .collect();
    functions.sort_unstable();
    functions.dedup();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nimbus top: {admin}, rates over the last {secs:.1} s\n"
    );
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>8} {:>8} {:>11} {:>8} {:>8}",
        "FUNCTION", "INVOKED", "INV/S", "ERR/S", "THROTTLE/S", "AVG MS", "RUNNING"
    );
    for f in &functions {
        let count = |s: &Scrape, outcome: &str| {
            s.sum(
                "nimbus_invocations_total",
                "function",
                f,
                &[("outcome", outcome)],
            )
        };
        let total = |s: &Scrape| s.sum("nimbus_invocations_total", "function", f, &[]);
        let rate = |outcome: Option<&str>| {
            let (a, b) = match outcome {
                Some(o) => (count(before, o), count(now, o)),
                None => (total(before), total(now)),
            };
            (b - a).max(0.0) / secs
        };
        let errors = rate(Some("error")) + rate(Some("timeout"));
        let d_sum = now.sum("nimbus_invocation_duration_seconds_sum", "function", f, &[])
            - before.sum("nimbus_invocation_duration_seconds_sum", "function", f, &[]);
        let d_count = now.sum(
            "nimbus_invocation_duration_seconds_count",
            "function",
            f,
            &[],
        ) - before.sum(
            "nimbus_invocation_duration_seconds_count",
            "function",
            f,
            &[],
        );
        let avg = if d_count > 0.0 {
            format!("{:.2}", d_sum / d_count * 1000.0)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>8.1} {:>8.1} {:>11.1} {:>8} {:>8}",
            f,
            total(now),
            rate(None),
            errors,
            rate(Some("throttled")),
            avg,
            now.sum("nimbus_concurrent_executions", "function", f, &[])
        );
    }
    let mut queues: Vec<&str> = now
        .of("nimbus_queue_messages")
        .filter_map(|(l, _)| l.get("queue").copied())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    let _ = writeln!(
        out,
        "\n{:<24} {:>10} {:>10} {:>8} {:>10}",
        "QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED", "OLDEST S"
    );
    for q in &queues {
        let state = |s: &str| now.sum("nimbus_queue_messages", "queue", q, &[("state", s)]);
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>8} {:>10}",
            q,
            state("visible"),
            state("in_flight"),
            state("delayed"),
            now.sum("nimbus_queue_oldest_message_age_seconds", "queue", q, &[])
        );
    }
    out
}

pub fn run(admin: &AdminArgs, interval: Duration, once: bool) -> anyhow::Result<()> {
    let client = admin.client()?;
    let mut before = Scrape::parse(&client.get_text("/metrics")?);
    let mut taken = Instant::now();
    loop {
        std::thread::sleep(interval);
        let now = Scrape::parse(&client.get_text("/metrics")?);
        let frame = render(admin.url(), &before, &now, taken.elapsed());
        taken = Instant::now();
        if once {
            print!("{frame}");
            return Ok(());
        }
        // Clear the screen and draw the frame from the top.
        print!("\x1b[2J\x1b[H{frame}");
        std::io::Write::flush(&mut std::io::stdout())?;
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_the_difference_between_scrapes() {
        let before = Scrape::parse(
            "# TYPE nimbus_invocations_total counter\n\
             nimbus_invocations_total{function=\"api\",outcome=\"success\"} 10\n\
             nimbus_invocations_total{function=\"api\",outcome=\"error\"} 1\n\
             nimbus_invocation_duration_seconds_sum{function=\"api\"} 0.5\n\
             nimbus_invocation_duration_seconds_count{function=\"api\"} 11\n",
        );
        let now = Scrape::parse(
            "nimbus_invocations_total{function=\"api\",outcome=\"success\"} 30\n\
             nimbus_invocations_total{function=\"api\",outcome=\"error\"} 3\n\
             nimbus_invocations_total{function=\"api\",outcome=\"throttled\"} 2\n\
             nimbus_invocation_duration_seconds_sum{function=\"api\"} 0.6\n\
             nimbus_invocation_duration_seconds_count{function=\"api\"} 31\n\
             nimbus_concurrent_executions{function=\"api\"} 4\n\
             nimbus_queue_messages{queue=\"jobs\",state=\"visible\"} 7\n\
             nimbus_queue_oldest_message_age_seconds{queue=\"jobs\"} 12\n",
        );
        let frame = render("http://a", &before, &now, Duration::from_secs(2));
        let api = frame.lines().find(|l| l.starts_with("api ")).unwrap();
        let cols: Vec<&str> = api.split_whitespace().collect();
        // invoked 35; 24 more in 2 s; 2 errors in 2 s; 2 throttles in 2 s;
        // 0.1 s over 20 invocations = 5 ms; 4 running.
        assert_eq!(cols, ["api", "35", "12.0", "1.0", "1.0", "5.00", "4"]);
        let jobs = frame.lines().find(|l| l.starts_with("jobs ")).unwrap();
        assert_eq!(
            jobs.split_whitespace().collect::<Vec<_>>(),
            ["jobs", "7", "0", "0", "12"]
        );
    }
}
