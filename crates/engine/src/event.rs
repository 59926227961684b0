//! Event functions: components exporting `nimbus:function/handler`, invoked
//! with a batch of events in a fresh instance; they answer which events
//! failed.

use crate::history::{Trigger, trace_id};
use crate::invocation::{FunctionCore, InvokeError, RecordContext};
use crate::state::InvocationState;
use nimbus_trace::TraceContext;
use nimbus_wit::EventFunctionPre;
pub use nimbus_wit::types::Event;
use std::sync::Arc;
use std::time::Instant;

/// A function ready to handle batches of events.
pub struct EventFunction {
    core: Arc<FunctionCore>,
    pre: EventFunctionPre<InvocationState>,
}

impl EventFunction {
    pub(crate) fn new(core: Arc<FunctionCore>, pre: EventFunctionPre<InvocationState>) -> Self {
        EventFunction { core, pre }
    }

    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Where this function's invocations (and its triggers' retries) are
    /// counted.
    pub fn metrics(&self) -> &nimbus_metrics::Metrics {
        self.core.metrics()
    }

    /// Handles `events` in a fresh instance, waiting for a free instance slot
    /// first. `Ok` holds the ids the handler reported as failed; a trap, the
    /// deadline or an `err` from the handler is an `InvokeError`.
    pub async fn invoke(
        &self,
        events: Vec<Event>,
        invocation_id: &str,
        trigger: Trigger,
    ) -> Result<Vec<String>, InvokeError> {
        let permit = self.core.permit().await;
        self.run(permit, events, invocation_id, 0, trigger).await
    }

    /// [`EventFunction::invoke`] for a call from another function, `depth`
    /// calls down a chain. It does not wait for a free instance (`Busy`
    /// instead), so a cycle of calls cannot deadlock.
    pub(crate) async fn invoke_nested(
        &self,
        events: Vec<Event>,
        invocation_id: &str,
        depth: u32,
        trigger: Trigger,
    ) -> Result<Vec<String>, InvokeError> {
        let permit = match self.core.try_permit() {
            Ok(permit) => permit,
            Err(e) => {
                let context = record_context(&events, trigger, None, None);
                self.core.record_throttled(invocation_id, context);
                return Err(e);
            }
        };
        self.run(permit, events, invocation_id, depth, trigger)
            .await
    }

    async fn run(
        &self,
        permit: crate::invocation::Running,
        events: Vec<Event>,
        invocation_id: &str,
        depth: u32,
        trigger: Trigger,
    ) -> Result<Vec<String>, InvokeError> {
        let started = Instant::now();
        let deadline = started + self.core.timeout;
        let invocation_id: Arc<str> = invocation_id.into();
        // A batch continues the trace of its first event that carries one.
        let parent = events
            .iter()
            .find_map(|e| e.traceparent.as_deref().and_then(TraceContext::parse));
        let trace = self.core.invocation_trace(&invocation_id, parent.as_ref());
        let mut store = self
            .core
            .store(self.pre.engine(), &invocation_id, deadline, depth, &trace);
        let mut context = record_context(
            &events,
            trigger,
            Some(store.data().output.clone()),
            Some(trace.recorder.clone()),
        );
        context.trace_id = Some(trace.span.context.trace_id_hex());
        tracing::debug!(function = %self.core.name, invocation_id = %invocation_id, events = events.len(), "invocation started");
        let run = async {
            let instantiating = Instant::now();
            let instance = self.pre.instantiate_async(&mut store).await?;
            self.core.instance_started(instantiating.elapsed());
            instance
                .nimbus_function_handler()
                .call_handle(&mut store, &events)
                .await
        };
        let result = match self.core.run(deadline, run).await {
            Ok(Ok(failed)) => Ok(failed),
            Ok(Err(message)) => Err(InvokeError::Failed(anyhow::anyhow!(
                "the handler returned an error: {message}"
            ))),
            Err(e) => Err(e),
        };
        drop(store);
        drop(permit);
        self.core.end_span(trace.span, &result);
        self.core
            .log_outcome(&invocation_id, started, &result, context);
        result
    }
}

/// A batch's record: its highest attempt and the first trace id it carries.
fn record_context(
    events: &[Event],
    trigger: Trigger,
    output: Option<Arc<crate::output::OutputBudget>>,
    spans: Option<nimbus_trace::SpanRecorder>,
) -> RecordContext {
    RecordContext {
        trigger,
        attempt: events.iter().map(|e| e.attempt).max().unwrap_or(1),
        trace_id: events
            .iter()
            .find_map(|e| e.traceparent.as_deref().and_then(trace_id)),
        output,
        spans,
    }
}
