//! What every invocation shares, whatever its trigger: a fresh store under
//! the function's limits (memory cap, deadline, output budget), its
//! concurrency permit, and how outcomes are classified and logged.

use crate::capabilities::{CapabilityCtx, Grants, Services};
use crate::egress::{EgressHooks, EgressPolicy};
use crate::history::{Trigger, short_error};
use crate::limits::MemoryCap;
use crate::output::OutputBudget;
use crate::state::InvocationState;
use nimbus_manifest::Function;
use nimbus_metrics::Outcome;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, Store, UpdateDeadline};

/// Why an invocation did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// All `max_concurrency` instances (or the pool's slots) are in use.
    #[error("function is at its concurrency limit")]
    Busy,
    /// The wall-clock deadline passed; the instance was stopped.
    #[error("function did not finish within its {timeout_ms} ms deadline")]
    DeadlineExceeded { timeout_ms: u64 },
    /// The guest trapped, failed to instantiate, or returned an error.
    #[error("function failed: {0:#}")]
    Failed(anyhow::Error),
}

/// Raised by the epoch callback when an invocation runs past its deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// An invocation holding one of its function's `max_concurrency` slots;
/// counted in `nimbus_concurrent_executions` until dropped.
pub(crate) struct Running {
    _permit: OwnedSemaphorePermit,
    gauge: Arc<nimbus_metrics::Gauge>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gauge.add(-1);
    }
}

/// A function's settings and shared state, for every kind of function.
pub(crate) struct FunctionCore {
    pub name: Arc<str>,
    env: Vec<(String, String)>,
    memory_mb: u32,
    pub timeout: Duration,
    max_log_bytes: u64,
    concurrency: Arc<Semaphore>,
    services: Arc<Services>,
    grants: Arc<Grants>,
    egress: Arc<EgressPolicy>,
}

impl FunctionCore {
    pub fn new(function: &Function, services: Arc<Services>) -> Self {
        FunctionCore {
            name: function.name.as_str().into(),
            env: function
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            memory_mb: function.memory_mb,
            timeout: Duration::from_millis(function.timeout_ms),
            max_log_bytes: function.max_log_bytes,
            concurrency: Arc::new(Semaphore::new(function.max_concurrency as usize)),
            services,
            grants: Arc::new(Grants::resolve(&function.grants)),
            egress: Arc::new(EgressPolicy::new(&function.outbound)),
        }
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    /// A permit now, or `Busy` (counted as a throttle).
    pub fn try_permit(&self) -> Result<Running, InvokeError> {
        match self.concurrency.clone().try_acquire_owned() {
            Ok(permit) => Ok(self.running(permit)),
            Err(_) => {
                self.metrics()
                    .invocation(&self.name, Outcome::Throttled, None);
                Err(InvokeError::Busy)
            }
        }
    }

    /// A permit, waiting for one to free up.
    pub async fn permit(&self) -> Running {
        let permit = self
            .concurrency
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        self.running(permit)
    }

    fn running(&self, permit: OwnedSemaphorePermit) -> Running {
        let gauge = self.metrics().concurrent_executions.with(&[&self.name]);
        gauge.add(1);
        Running {
            _permit: permit,
            gauge,
        }
    }

    pub fn metrics(&self) -> &nimbus_metrics::Metrics {
        &self.services.metrics
    }

    /// Starts the span of one invocation, under `parent` (the trigger's
    /// context) or as a new trace, with a recorder that keeps it and the
    /// spans of its host calls for its record.
    pub fn invocation_trace(
        &self,
        invocation_id: &str,
        parent: Option<&nimbus_trace::TraceContext>,
    ) -> InvocationTrace {
        let recorder = nimbus_trace::SpanRecorder::default();
        let tracer = self.services.tracer.recording(&recorder);
        let mut span = tracer.start(
            format!("invoke {}", self.name),
            nimbus_trace::SpanKind::Internal,
            parent,
        );
        span.set("faas.invocation_id", invocation_id);
        span.set("nimbus.function", self.name.as_ref());
        InvocationTrace {
            span,
            tracer,
            recorder,
        }
    }

    /// Ends an invocation's span with its outcome; its spans are then ready
    /// for the record.
    pub fn end_span<T>(&self, mut span: nimbus_trace::Span, result: &Result<T, InvokeError>) {
        if let Err(e) = result {
            span.fail(e.to_string());
        }
        span.end();
    }

    /// Records how long creating an instance took.
    pub fn instance_started(&self, took: Duration) {
        let metrics = self.metrics();
        metrics.instance_starts.with(&[&self.name]).inc();
        metrics
            .instance_start_duration
            .with(&[&self.name])
            .observe(took.as_secs_f64());
    }

    /// A fresh store for one invocation, limited by this function's settings.
    /// Every epoch tick the guest yields to other tasks; past `deadline` it
    /// traps. (A guest blocked in a host call is stopped by the caller's
    /// timeout around the whole invocation instead.)
    pub fn store(
        &self,
        engine: &Engine,
        invocation_id: &Arc<str>,
        deadline: Instant,
        depth: u32,
        trace: &InvocationTrace,
    ) -> Store<InvocationState> {
        let tracer = trace.tracer.clone();
        let trace = trace.span.context;
        let output = OutputBudget::new(
            self.name.clone(),
            invocation_id.clone(),
            self.max_log_bytes,
            self.services.history.clone(),
        );
        let capabilities = CapabilityCtx {
            services: self.services.clone(),
            grants: self.grants.clone(),
            function: self.name.clone(),
            invocation_id: invocation_id.clone(),
            depth,
            tracer: tracer.clone(),
            trace,
        };
        let state = InvocationState::new(
            &self.env,
            &output,
            MemoryCap::new(self.memory_mb),
            capabilities,
            EgressHooks::new(
                self.egress.clone(),
                self.name.clone(),
                invocation_id.clone(),
                tracer,
                trace,
                output.clone(),
            ),
        );
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Runs `call` until it finishes or `deadline` passes, and classifies
    /// the outcome.
    pub async fn run<T>(
        &self,
        deadline: Instant,
        call: impl Future<Output = wasmtime::Result<T>>,
    ) -> Result<T, InvokeError> {
        let timeout_ms = self.timeout_ms();
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.is::<DeadlineExceeded>() => {
                Err(InvokeError::DeadlineExceeded { timeout_ms })
            }
            Ok(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => Err(InvokeError::Busy),
            Ok(Err(e)) => Err(InvokeError::Failed(e.into())),
            Err(_elapsed) => Err(InvokeError::DeadlineExceeded { timeout_ms }),
        }
    }

    /// Leaves the record of an invocation refused at `max_concurrency`
    /// (already counted by [`FunctionCore::try_permit`]).
    pub fn record_throttled(&self, invocation_id: &str, context: RecordContext) {
        let error = InvokeError::Busy.to_string();
        self.record(
            invocation_id,
            Duration::ZERO,
            Outcome::Throttled,
            Some(error),
            context,
        );
    }

    fn record(
        &self,
        invocation_id: &str,
        took: Duration,
        outcome: Outcome,
        error: Option<String>,
        context: RecordContext,
    ) {
        let (logs, logs_truncated) = context
            .output
            .as_ref()
            .map(|output| output.take_kept())
            .unwrap_or_default();
        // A throttled invocation never ran: it bills nothing. Otherwise whole
        // milliseconds, rounded up: a run of 0.3 ms bills 1.
        let ran = outcome != Outcome::Throttled;
        let outbound_bytes = match &context.output {
            Some(output) if ran => output.outbound_bytes(),
            _ => 0,
        };
        let billed_ms = if ran {
            took.as_micros().div_ceil(1000) as u64
        } else {
            0
        };
        if ran {
            let metrics = self.metrics();
            let function: &str = &self.name;
            metrics.usage_billed_ms.with(&[function]).inc_by(billed_ms);
            metrics
                .usage_mb_ms
                .with(&[function])
                .inc_by(u64::from(self.memory_mb) * billed_ms);
            metrics
                .usage_outbound_bytes
                .with(&[function])
                .inc_by(outbound_bytes);
        }
        let (spans, spans_dropped) = context
            .spans
            .as_ref()
            .map(|recorder| {
                let (spans, dropped) = recorder.take();
                kept_spans(spans, dropped)
            })
            .unwrap_or_default();
        let now_ms = crate::time::now_ms();
        self.services
            .history
            .record(nimbus_store::InvocationRecord {
                id: invocation_id.to_owned(),
                function: self.name.to_string(),
                trigger: context.trigger.kind.as_str().to_owned(),
                source: context.trigger.source,
                started_at: now_ms.saturating_sub(took.as_millis() as u64),
                duration_ms: took.as_millis() as u64,
                outcome: outcome.as_str().to_owned(),
                error: error.map(short_error),
                attempt: context.attempt,
                trace_id: context.trace_id,
                logs,
                logs_truncated,
                node: Some(self.services.history.node().to_owned()),
                memory_mb: self.memory_mb,
                billed_ms,
                outbound_bytes,
                spans,
                spans_dropped,
            });
    }

    /// Logs how an invocation ended, one line, with its id, and leaves its
    /// record in the history.
    pub fn log_outcome<T>(
        &self,
        invocation_id: &str,
        started: Instant,
        result: &Result<T, InvokeError>,
        context: RecordContext,
    ) {
        let name = &self.name;
        let outcome = match result {
            Ok(_) => Outcome::Success,
            Err(InvokeError::Busy) => Outcome::Throttled,
            Err(InvokeError::DeadlineExceeded { .. }) => Outcome::Timeout,
            Err(InvokeError::Failed(_)) => Outcome::Error,
        };
        let ran = (outcome != Outcome::Throttled).then(|| started.elapsed());
        self.metrics().invocation(name, outcome, ran);
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            // Debug, not info: the history record holds the same (function,
            // id, duration, outcome), and formatting and writing a line per
            // request to stderr is a cost every HTTP request paid (issue 17).
            Ok(_) => {
                tracing::debug!(function = %name, invocation_id, duration_ms, "invocation finished")
            }
            Err(InvokeError::Failed(e)) => {
                tracing::error!(function = %name, invocation_id, duration_ms, "invocation failed: {}", describe(e));
                tracing::debug!(function = %name, invocation_id, "failure in full: {e:?}");
            }
            Err(e) => {
                tracing::error!(function = %name, invocation_id, duration_ms, "invocation failed: {e}")
            }
        }
        let error = match result {
            Ok(_) => None,
            Err(InvokeError::Failed(e)) => Some(describe(e)),
            Err(e) => Some(e.to_string()),
        };
        self.record(invocation_id, started.elapsed(), outcome, error, context);
    }
}

/// What an invocation's record needs besides how it ended.
pub(crate) struct RecordContext {
    pub trigger: Trigger,
    pub attempt: u32,
    pub trace_id: Option<String>,
    /// The invocation's output, when it got as far as having some.
    pub output: Option<Arc<OutputBudget>>,
    /// Its spans, when it got as far as having a span (its own span ended
    /// before the record is made, so it is among them).
    pub spans: Option<nimbus_trace::SpanRecorder>,
}

/// An invocation's span, the tracer its host calls start their spans with,
/// and where all of them are kept for its record.
pub(crate) struct InvocationTrace {
    pub span: nimbus_trace::Span,
    tracer: nimbus_trace::Tracer,
    pub recorder: nimbus_trace::SpanRecorder,
}

/// Bytes of span text (names, attribute values, errors) one record keeps:
/// a guest making many host calls with long arguments must not grow the
/// history, or the writer thread's work, without bound.
pub(crate) const MAX_RECORD_SPAN_BYTES: usize = 32 * 1024;
/// Longest attribute value or span error kept, in characters.
const MAX_SPAN_TEXT_CHARS: usize = 512;

/// The spans a record keeps, in the order they ended, within
/// [`MAX_RECORD_SPAN_BYTES`], and how many were left out. The latest are
/// kept first: the invocation's own span ends last.
fn kept_spans(
    spans: Vec<nimbus_trace::FinishedSpan>,
    mut dropped: u32,
) -> (Vec<nimbus_store::SpanRecord>, u32) {
    let mut budget = MAX_RECORD_SPAN_BYTES;
    let mut kept = Vec::with_capacity(spans.len());
    for span in spans.into_iter().rev() {
        let record = span_record(span);
        let size = record.name.len()
            + record.error.as_ref().map_or(0, String::len)
            + record
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > budget {
            dropped = dropped.saturating_add(1);
            continue;
        }
        budget -= size;
        kept.push(record);
    }
    kept.reverse();
    (kept, dropped)
}

/// A span as its invocation's record keeps it, its texts clipped.
fn span_record(span: nimbus_trace::FinishedSpan) -> nimbus_store::SpanRecord {
    use nimbus_trace::to_hex as hex;
    let clip = |text: String| crate::history::clip(text, MAX_SPAN_TEXT_CHARS);
    nimbus_store::SpanRecord {
        span_id: hex(&span.context.span_id),
        parent_id: span.parent.as_ref().map(|p| hex(p)),
        name: clip(span.name),
        kind: span.kind.as_str().to_owned(),
        start_us: span.start_ns / 1000,
        duration_us: span.end_ns.saturating_sub(span.start_ns) / 1000,
        attributes: span
            .attributes
            .into_iter()
            .map(|(k, v)| (k.to_owned(), clip(v)))
            .collect(),
        error: span.error.map(clip),
    }
}

/// One line for the log: the error chain without the (multi-line) wasm
/// backtrace, which is logged at debug level instead.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.starts_with("error while executing at wasm backtrace"))
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_trace::{SpanKind, SpanRecorder, Tracer};

    #[test]
    fn a_record_keeps_its_latest_spans_within_the_byte_budget_with_texts_clipped() {
        let recorder = SpanRecorder::default();
        let tracer = Tracer::disabled().recording(&recorder);
        let root = tracer.start("invoke f", SpanKind::Internal, None);
        for i in 0..100 {
            let mut call = tracer.start(format!("call {i}"), SpanKind::Client, Some(&root.context));
            call.set("url.full", "x".repeat(2_000));
            call.end();
        }
        root.end();
        let (spans, dropped) = recorder.take();
        let (kept, dropped) = kept_spans(spans, dropped);
        let size: usize = kept
            .iter()
            .map(|s| {
                s.name.len()
                    + s.attributes
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        assert!(size <= MAX_RECORD_SPAN_BYTES, "{size}");
        assert_eq!(kept.len() as u32 + dropped, 101);
        assert!(dropped > 0);
        let last = &kept[kept.len() - 1];
        assert_eq!(last.name, "invoke f", "the invocation's own span is kept");
        assert_eq!(
            kept[kept.len() - 2].name,
            "call 99",
            "then the latest calls"
        );
        let value = &kept[0].attributes[0].1;
        assert_eq!(
            value.chars().count(),
            MAX_SPAN_TEXT_CHARS + 1,
            "clipped, with an ellipsis"
        );
    }
}
