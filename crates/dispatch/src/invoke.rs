//! Asynchronous invocation: an event is acknowledged once it is durably on
//! the function's internal queue (`_async.NAME`); from there `retrying`
//! delivers it with the function's `[function.NAME.async]` retries, event
//! age limit and destinations.

use crate::retrying::{RetryingDelivery, RetryingSource};
use nimbus_engine::{EventFunction, TriggerKind};
use nimbus_manifest::{Delivery, Function, RetryPolicy};
use nimbus_store::{Clock, QueueConfig, QueueSignals, QueueStore, SendMessage, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Most workers draining one function's async queue; the function's own
/// `max_concurrency` bounds them further.
const MAX_WORKERS: u32 = 16;
/// Slack between the function's deadline and the lease on an async event.
const LEASE_MARGIN_MS: u64 = 30_000;

pub use nimbus_engine::async_queue_name;

/// What an event's attributes (`content-type`, `traceparent`) may add to its
/// payload on the internal queue.
const ATTRIBUTE_ALLOWANCE_BYTES: usize = 8 * 1024;

/// The internal queue's settings for `function`.
pub fn async_queue_config(function: &Function) -> QueueConfig {
    QueueConfig {
        name: async_queue_name(&function.name),
        visibility_timeout_ms: function.timeout_ms + LEASE_MARGIN_MS,
        // Kept past the event age limit, so an expired event is seen and sent
        // to the failure destination rather than silently dropped.
        retention_ms: (function.async_invoke.max_event_age_s + 3600) * 1000,
        delay_ms: 0,
        // Attributes count toward the size: room for the content type and
        // trace context on top of a payload of the largest default body.
        max_message_bytes: nimbus_manifest::limits::MAX_BODY_BYTES.default as usize
            + ATTRIBUTE_ALLOWANCE_BYTES,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

/// Queues an event for `function`; returns its id once it is durable.
pub async fn enqueue(
    store: &dyn QueueStore,
    function: &str,
    data: Vec<u8>,
    attributes: BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let queue = async_queue_name(function);
    let message = SendMessage {
        body: data,
        attributes,
        ..SendMessage::default()
    };
    let id = store
        .send(&queue, vec![message])
        .await?
        .remove(0)
        .message_id;
    Ok(id)
}

/// Runs the async workers of one event function until `shutdown`: one
/// event per invocation, up to the function's `max_concurrency` (at most
/// `MAX_WORKERS`) at a time, with its `[function.NAME.async]` retries.
pub async fn run_async_invocations(
    function: Arc<EventFunction>,
    policy: RetryPolicy,
    max_concurrency: u32,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    let queue = async_queue_name(function.name());
    let source = RetryingSource {
        queue: queue.clone(),
        kind: TriggerKind::Async,
        name: queue,
        event_source: "nimbus:invoke".to_owned(),
        event_type: "nimbus.invoke".to_owned(),
    };
    let delivery = RetryingDelivery {
        delivery: Delivery {
            batch_size: 1,
            batch_window_ms: 0,
            max_concurrency: max_concurrency.clamp(1, MAX_WORKERS),
            report_batch_item_failures: false,
            retry_backoff: policy.retry_backoff,
        },
        policy,
    };
    crate::retrying::run_retrying(function, source, delivery, store, signals, clock, shutdown)
        .await;
}

/// Asynchronous invocation of one event function, as a [`Trigger`].
///
/// [`Trigger`]: crate::trigger::Trigger
pub struct AsyncInvocation(pub Function);

impl crate::trigger::Trigger for AsyncInvocation {
    fn subject(&self) -> String {
        format!("function `{}`", self.0.name)
    }

    /// Every event function has one; `nimbus up` does not list them.
    fn describe(&self) -> Option<String> {
        None
    }

    fn function(&self) -> &str {
        &self.0.name
    }

    fn destinations(&self) -> Vec<&str> {
        crate::trigger::destination_functions(&self.0.async_invoke)
    }

    fn queues(&self, _app: &nimbus_manifest::App) -> Vec<QueueConfig> {
        vec![async_queue_config(&self.0)]
    }

    fn start(&self, ctx: &crate::trigger::TriggerContext, tasks: &mut tokio::task::JoinSet<()>) {
        tasks.spawn(run_async_invocations(
            ctx.function(&self.0.name),
            self.0.async_invoke.clone(),
            self.0.max_concurrency,
            ctx.store.clone(),
            ctx.store.signals().clone(),
            ctx.clock.clone(),
            ctx.stopped.clone(),
        ));
    }
}
