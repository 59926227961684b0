//! Nimbus's Prometheus metrics: every family the server exports, in one
//! place with its name, help and labels, so the docs (OBSERVABILITY.md),
//! the code that counts and the scrape agree.
//!
//! Labels take only values the app declares (function, route, queue names)
//! or small fixed sets (outcome, status, method), and every family is
//! bounded by [`registry::MAX_SERIES`] besides.

pub mod registry;

pub use registry::{
    Counter, Family, Gauge, Histogram, LATENCY_BUCKETS, SIZE_BUCKETS, ScaledCounter,
};

use std::time::Duration;

/// How an invocation ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A trap, an error from the handler, a blown memory cap.
    Error,
    /// The deadline passed.
    Timeout,
    /// Refused at `max_concurrency`; the function did not run.
    Throttled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Throttled => "throttled",
        }
    }
}

/// Every metric Nimbus exports.
pub struct Metrics {
    pub invocations: Family<Counter>,
    pub invocation_duration: Family<Histogram>,
    pub concurrent_executions: Family<Gauge>,
    pub instance_starts: Family<Counter>,
    pub usage_billed_ms: Family<ScaledCounter>,
    pub usage_mb_ms: Family<ScaledCounter>,
    pub usage_outbound_bytes: Family<Counter>,
    pub instance_start_duration: Family<Histogram>,
    pub function_loads: Family<Counter>,
    pub event_retries: Family<Counter>,
    pub http_requests: Family<Counter>,
    pub http_request_duration: Family<Histogram>,
    pub queue_messages: Family<Gauge>,
    pub queue_oldest_age: Family<Gauge>,
    pub dead_letter_messages: Family<Gauge>,
    pub dead_lettered: Family<Counter>,
    pub store_commits: Family<Counter>,
    pub store_commit_duration: Family<Histogram>,
    pub store_commit_batch: Family<Histogram>,
    pub store_log_sync_duration: Family<Histogram>,
    pub history_records_dropped: Family<Counter>,
    pub stream_iterator_age: Family<Gauge>,
    pub stream_records: Family<Counter>,
    pub schedule_lag: Family<Histogram>,
    pub object_events: Family<Counter>,
    pub node_info: Family<Gauge>,
    pub deployment: Family<Gauge>,
    pub deploys: Family<Counter>,
}

/// Buckets of `nimbus_schedule_lag_seconds`: from on time to a day late
/// (a tick fired by catch-up after downtime).
pub const SCHEDULE_LAG_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0, 86_400.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            invocations: Family::new(
                "nimbus_invocations_total",
                "Invocations by function and outcome (success, error, timeout, throttled).",
                &["function", "outcome"],
                Counter::default(),
            ),
            invocation_duration: Family::new(
                "nimbus_invocation_duration_seconds",
                "Wall-clock time of invocations that ran, from instance start to the end.",
                &["function"],
                Histogram::new(LATENCY_BUCKETS),
            ),
            concurrent_executions: Family::new(
                "nimbus_concurrent_executions",
                "Invocations of the function running now.",
                &["function"],
                Gauge::default(),
            ),
            usage_billed_ms: Family::new(
                "nimbus_usage_billed_seconds_total",
                "Billed run time by function: each invocation's run time rounded up to whole milliseconds, added (this node's since it started; `/v1/usage` has every node's by hour).",
                &["function"],
                ScaledCounter::new(1000),
            ),
            usage_mb_ms: Family::new(
                "nimbus_usage_gigabyte_seconds_total",
                "Memory over time by function: each invocation's memory_mb times its billed time, in GB-seconds (1 GB = 1024 MB).",
                &["function"],
                ScaledCounter::new(1_024_000),
            ),
            usage_outbound_bytes: Family::new(
                "nimbus_usage_outbound_bytes_total",
                "Bytes of outbound HTTP request bodies functions sent, by function.",
                &["function"],
                Counter::default(),
            ),
            instance_starts: Family::new(
                "nimbus_instance_starts_total",
                "Instances created; every invocation runs in a fresh instance (a cold start in other platforms' terms, made cheap by pre-instantiation and the pooling allocator).",
                &["function"],
                Counter::default(),
            ),
            instance_start_duration: Family::new(
                "nimbus_instance_start_duration_seconds",
                "Time to instantiate a function's component for one invocation.",
                &["function"],
                Histogram::new(LATENCY_BUCKETS),
            ),
            function_loads: Family::new(
                "nimbus_function_loads_total",
                "Components loaded at start, by whether they were compiled or their cached artifact reused.",
                &["function", "artifact"],
                Counter::default(),
            ),
            event_retries: Family::new(
                "nimbus_event_retries_total",
                "Events given back for another attempt after a failed invocation.",
                &["function", "source"],
                Counter::default(),
            ),
            http_requests: Family::new(
                "nimbus_http_requests_total",
                "Gateway requests by matched route pattern (empty if none matched), method and status.",
                &["route", "method", "status"],
                Counter::default(),
            ),
            http_request_duration: Family::new(
                "nimbus_http_request_duration_seconds",
                "Time from a request's head to its response head, by matched route pattern.",
                &["route"],
                Histogram::new(LATENCY_BUCKETS),
            ),
            queue_messages: Family::new(
                "nimbus_queue_messages",
                "Messages in a queue by state (visible, in_flight, delayed), as of the scrape.",
                &["queue", "state"],
                Gauge::default(),
            ),
            queue_oldest_age: Family::new(
                "nimbus_queue_oldest_message_age_seconds",
                "Age of the oldest message in a queue (0 when empty), as of the scrape.",
                &["queue"],
                Gauge::default(),
            ),
            dead_letter_messages: Family::new(
                "nimbus_dead_letter_queue_messages",
                "Messages in a queue that is some queue's dead-letter queue, as of the scrape.",
                &["queue"],
                Gauge::default(),
            ),
            dead_lettered: Family::new(
                "nimbus_dead_lettered_messages_total",
                "Messages moved to a dead-letter queue, by the queue they came from.",
                &["queue"],
                Counter::default(),
            ),
            store_commits: Family::new(
                "nimbus_store_commits_total",
                "Store transactions committed (each carries one or more requests: group commit).",
                &[],
                Counter::default(),
            ),
            store_commit_duration: Family::new(
                "nimbus_store_commit_duration_seconds",
                "Time from beginning a store transaction to its durable commit.",
                &[],
                Histogram::new(LATENCY_BUCKETS),
            ),
            store_commit_batch: Family::new(
                "nimbus_store_commit_batch_size",
                "Requests carried by one store commit.",
                &[],
                Histogram::new(SIZE_BUCKETS),
            ),
            store_log_sync_duration: Family::new(
                "nimbus_store_log_sync_duration_seconds",
                "Time one sync of the embedded store's write-ahead log took: every acknowledged write waits for one, so a slow one is the disk holding answers up.",
                &[],
                Histogram::new(LATENCY_BUCKETS),
            ),
            history_records_dropped: Family::new(
                "nimbus_history_records_dropped_total",
                "Invocation records dropped because too many were waiting for the store.",
                &[],
                Counter::default(),
            ),
            stream_iterator_age: Family::new(
                "nimbus_stream_iterator_age_seconds",
                "Age (by the store clock) of the last change record a stream trigger handled: how far the consumer lags behind the table's writes.",
                &["table", "function"],
                Gauge::default(),
            ),
            stream_records: Family::new(
                "nimbus_stream_records_total",
                "Change records a stream trigger settled, by outcome (success, failed: given to on_failure or dropped, expired: past max_event_age_s).",
                &["table", "function", "outcome"],
                Counter::default(),
            ),
            schedule_lag: Family::new(
                "nimbus_schedule_lag_seconds",
                "How late a schedule tick fired after its scheduled time, by the store's clock.",
                &["schedule"],
                Histogram::new(SCHEDULE_LAG_BUCKETS),
            ),
            object_events: Family::new(
                "nimbus_object_events_total",
                "Object changes committed with their event, by bucket and type (created, removed).",
                &["bucket", "type"],
                Counter::default(),
            ),
            node_info: Family::new(
                "nimbus_node_info",
                "Always 1: the id of the node these figures come from (nodes sharing a store each have one).",
                &["node"],
                Gauge::default(),
            ),
            deployment: Family::new(
                "nimbus_deployment",
                "The id of the deployment this node serves.",
                &[],
                Gauge::default(),
            ),
            deploys: Family::new(
                "nimbus_deploys_total",
                "Versions this node was asked to serve (deployed here, rolled back to, or followed from the store), by outcome: live, or refused (the old version kept serving).",
                &["outcome"],
                Counter::default(),
            ),
        }
    }
}

impl Metrics {
    /// Counts an invocation that ended with `outcome`; `ran` is how long it
    /// ran (`None` if it never started).
    pub fn invocation(&self, function: &str, outcome: Outcome, ran: Option<Duration>) {
        self.invocations.with(&[function, outcome.as_str()]).inc();
        if let Some(ran) = ran {
            self.invocation_duration
                .with(&[function])
                .observe(ran.as_secs_f64());
        }
    }

    /// The whole exposition, in the text format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.invocations.render(&mut out);
        self.invocation_duration.render(&mut out);
        self.concurrent_executions.render(&mut out);
        self.instance_starts.render(&mut out);
        self.usage_billed_ms.render(&mut out);
        self.usage_mb_ms.render(&mut out);
        self.usage_outbound_bytes.render(&mut out);
        self.instance_start_duration.render(&mut out);
        self.function_loads.render(&mut out);
        self.event_retries.render(&mut out);
        self.http_requests.render(&mut out);
        self.http_request_duration.render(&mut out);
        self.queue_messages.render(&mut out);
        self.queue_oldest_age.render(&mut out);
        self.dead_letter_messages.render(&mut out);
        self.dead_lettered.render(&mut out);
        self.store_commits.render(&mut out);
        self.store_commit_duration.render(&mut out);
        self.store_commit_batch.render(&mut out);
        self.store_log_sync_duration.render(&mut out);
        self.history_records_dropped.render(&mut out);
        self.stream_iterator_age.render(&mut out);
        self.stream_records.render(&mut out);
        self.schedule_lag.render(&mut out);
        self.object_events.render(&mut out);
        self.node_info.render(&mut out);
        self.deployment.render(&mut out);
        self.deploys.render(&mut out);
        out
    }
}

/// What the store reports as it commits, without knowing about metrics.
impl nimbus_store::StoreObserver for Metrics {
    fn committed(&self, requests: usize, took: Duration) {
        self.store_commits.with(&[]).inc();
        self.store_commit_duration
            .with(&[])
            .observe(took.as_secs_f64());
        self.store_commit_batch.with(&[]).observe(requests as f64);
    }

    fn dead_lettered(&self, queue: &str, messages: u64) {
        self.dead_lettered.with(&[queue]).inc_by(messages);
    }

    fn log_synced(&self, took: Duration) {
        self.store_log_sync_duration
            .with(&[])
            .observe(took.as_secs_f64());
    }
}
