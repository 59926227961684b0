//! Queue triggers: `max_concurrency` workers each lease up to `batch_size`
//! messages (waiting up to `batch_window_ms` to fill a batch), invoke the
//! function, delete what succeeded and give back what failed with the retry
//! backoff. Retries end in the queue's dead-letter queue after its
//! `max_receive_count`, as the store moves it there.

use crate::worker::IDLE_POLL;
use nimbus_engine::{Event, EventFunction, InvokeError, rfc3339};
use nimbus_manifest::QueueTrigger;
use nimbus_store::{NackOptions, QueueSignals, QueueStore, ReceivedMessage, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Runs one queue trigger until `shutdown` turns true; in-flight batches
/// finish first.
pub async fn run_queue_trigger(
    trigger: QueueTrigger,
    function: Arc<EventFunction>,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    shutdown: watch::Receiver<bool>,
) {
    let trigger = Arc::new(trigger);
    let mut workers = JoinSet::new();
    for _ in 0..trigger.delivery.max_concurrency {
        workers.spawn(worker(
            trigger.clone(),
            function.clone(),
            store.clone(),
            signals.clone(),
            shutdown.clone(),
        ));
    }
    while workers.join_next().await.is_some() {}
}

async fn worker(
    trigger: Arc<QueueTrigger>,
    function: Arc<EventFunction>,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    shutdown: watch::Receiver<bool>,
) {
    let signal = signals.get(&trigger.queue);
    let what = format!(
        "the queue trigger of function `{}` on `{}`",
        trigger.function, trigger.queue
    );
    crate::worker::run(
        &what,
        &signal,
        shutdown,
        || {
            let (trigger, store) = (trigger.clone(), store.clone());
            async move { collect_batch(&trigger, store.as_ref()).await }
        },
        |batch| {
            let (trigger, function, store) = (trigger.clone(), function.clone(), store.clone());
            async move { deliver(&trigger, &function, store.as_ref(), batch).await }
        },
    )
    .await;
}

/// Leases up to `batch_size` messages; once the first arrives, keeps
/// receiving until the batch is full or `batch_window_ms` has passed.
async fn collect_batch(
    trigger: &QueueTrigger,
    store: &dyn QueueStore,
) -> Result<Vec<ReceivedMessage>, StoreError> {
    let delivery = &trigger.delivery;
    let mut batch = store
        .receive(&trigger.queue, delivery.batch_size, None)
        .await?;
    if batch.is_empty() || delivery.batch_window_ms == 0 {
        return Ok(batch);
    }
    let window_end = tokio::time::Instant::now() + Duration::from_millis(delivery.batch_window_ms);
    while (batch.len() as u32) < delivery.batch_size && tokio::time::Instant::now() < window_end {
        let want = delivery.batch_size - batch.len() as u32;
        let more = store.receive(&trigger.queue, want, None).await?;
        if more.is_empty() {
            tokio::time::sleep_until(window_end.min(tokio::time::Instant::now() + IDLE_POLL)).await;
        }
        batch.extend(more);
    }
    Ok(batch)
}

fn event(queue: &str, message: &ReceivedMessage) -> Event {
    Event {
        id: message.message_id.clone(),
        source: format!("nimbus:queue/{queue}"),
        type_: "nimbus.queue.message".to_owned(),
        subject: None,
        time: rfc3339(message.sent_at),
        datacontenttype: message.attributes.get("content-type").cloned(),
        data: message.body.clone(),
        attempt: message.receive_count,
        traceparent: message.attributes.get("traceparent").cloned(),
    }
}

async fn deliver(
    trigger: &QueueTrigger,
    function: &EventFunction,
    store: &dyn QueueStore,
    batch: Vec<ReceivedMessage>,
) {
    let events = batch.iter().map(|m| event(&trigger.queue, m)).collect();
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let source =
        nimbus_engine::Trigger::new(nimbus_engine::TriggerKind::Queue, trigger.queue.as_str());
    let outcome = function.invoke(events, &invocation_id, source).await;
    let (failed, error): (HashSet<String>, String) = match outcome {
        Ok(reported) if reported.is_empty() => (HashSet::new(), String::new()),
        Ok(reported) if trigger.delivery.report_batch_item_failures => {
            let ids: HashSet<String> = batch.iter().map(|m| m.message_id.clone()).collect();
            for unknown in reported.iter().filter(|id| !ids.contains(*id)) {
                tracing::warn!(%invocation_id, id = %unknown, "the handler reported a failure for an event not in its batch");
            }
            (
                reported.into_iter().collect(),
                "reported as failed by the handler".to_owned(),
            )
        }
        Ok(_) => {
            tracing::warn!(
                %invocation_id,
                "the handler reported failed events but report_batch_item_failures is off: the whole batch is retried"
            );
            (
                batch.iter().map(|m| m.message_id.clone()).collect(),
                "the handler reported failed events".to_owned(),
            )
        }
        Err(e) => {
            let error = match &e {
                InvokeError::Failed(inner) => format!("function failed: {inner}"),
                other => other.to_string(),
            };
            (batch.iter().map(|m| m.message_id.clone()).collect(), error)
        }
    };
    for message in &batch {
        let result = if failed.contains(&message.message_id) {
            let unit = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
            let options = NackOptions {
                error: Some(error.clone()),
                visible_after_ms: trigger
                    .delivery
                    .retry_backoff
                    .jittered_ms(message.receive_count, unit),
            };
            let nacked = store
                .nack(&trigger.queue, &message.receipt_handle, options)
                .await;
            if nacked.is_ok() {
                function
                    .metrics()
                    .event_retries
                    .with(&[function.name(), &format!("queue:{}", trigger.queue)])
                    .inc();
            }
            nacked
        } else {
            store.delete(&trigger.queue, &message.receipt_handle).await
        };
        match result {
            Ok(()) => {}
            // The lease ran out and someone else has the message now: it will
            // be delivered again (at-least-once).
            Err(StoreError::StaleReceipt) => tracing::warn!(
                %invocation_id,
                message_id = %message.message_id,
                "the message's lease expired before it was settled; it will be delivered again"
            ),
            Err(e) => {
                tracing::error!(%invocation_id, message_id = %message.message_id, "failed to settle a message: {e}")
            }
        }
    }
}

/// One `[[trigger.queue]]` as a [`Trigger`].
pub struct QueueTriggerRun(pub QueueTrigger);

impl crate::trigger::Trigger for QueueTriggerRun {
    fn subject(&self) -> String {
        format!("the queue trigger on `{}`", self.0.queue)
    }

    fn describe(&self) -> Option<String> {
        Some(format!("queue {} -> {}", self.0.queue, self.0.function))
    }

    fn function(&self) -> &str {
        &self.0.function
    }

    fn start(&self, ctx: &crate::trigger::TriggerContext, tasks: &mut JoinSet<()>) {
        tasks.spawn(run_queue_trigger(
            self.0.clone(),
            ctx.function(&self.0.function),
            ctx.store.clone(),
            ctx.store.signals().clone(),
            ctx.stopped.clone(),
        ));
    }
}
