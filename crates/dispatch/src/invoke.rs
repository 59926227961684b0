//! Asynchronous invocation: an event is acknowledged once it is durably on
//! the function's internal queue (`_async.NAME`); workers then invoke the
//! function, retry failures with backoff up to `max_retry_attempts`, drop
//! events older than `max_event_age_s`, and send a record of the outcome to
//! the `on_success` / `on_failure` destination.

use base64::Engine as _;
use nimbus_engine::{Event, EventFunction, rfc3339};
use nimbus_manifest::{Destination, Function, RetryPolicy};
use nimbus_store::{
    Clock, NackOptions, QueueConfig, QueueSignals, QueueStore, ReceivedMessage, SendMessage,
    StoreError,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Most workers draining one function's async queue; the function's own
/// `max_concurrency` bounds them further.
const MAX_WORKERS: u32 = 16;
/// Slack between the function's deadline and the lease on an async event.
const LEASE_MARGIN_MS: u64 = 30_000;

pub use nimbus_engine::async_queue_name;

/// The internal queue's settings for `function`.
pub fn async_queue_config(function: &Function) -> QueueConfig {
    QueueConfig {
        name: async_queue_name(&function.name),
        visibility_timeout_ms: function.timeout_ms + LEASE_MARGIN_MS,
        // Kept past the event age limit, so an expired event is seen and sent
        // to the failure destination rather than silently dropped.
        retention_ms: (function.async_invoke.max_event_age_s + 3600) * 1000,
        delay_ms: 0,
        max_message_bytes: nimbus_manifest::limits::MAX_BODY_BYTES.default as usize,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

/// Queues an event for `function`; returns its id once it is durable.
pub async fn enqueue(
    store: &dyn QueueStore,
    signals: &QueueSignals,
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
    signals.notify(&queue);
    Ok(id)
}

/// What to do with an event after an attempt.
#[derive(Debug, PartialEq)]
enum Settle {
    Succeeded,
    RetryAfterMs(u64),
    RetriesExhausted,
}

/// `attempt` counts from 1; `unit` in [0, 1) draws the jitter.
fn settle(succeeded: bool, attempt: u32, policy: &RetryPolicy, unit: f64) -> Settle {
    if succeeded {
        Settle::Succeeded
    } else if attempt > policy.max_retry_attempts {
        Settle::RetriesExhausted
    } else {
        Settle::RetryAfterMs(policy.retry_backoff.jittered_ms(attempt, unit))
    }
}

fn too_old(age_ms: u64, policy: &RetryPolicy) -> bool {
    age_ms > policy.max_event_age_s * 1000
}

/// Runs the async workers of one event function until `shutdown`.
pub async fn run_async_invocations(
    function: Arc<EventFunction>,
    policy: RetryPolicy,
    max_concurrency: u32,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    let policy = Arc::new(policy);
    let mut workers = JoinSet::new();
    for _ in 0..max_concurrency.clamp(1, MAX_WORKERS) {
        workers.spawn(worker(
            function.clone(),
            policy.clone(),
            store.clone(),
            signals.clone(),
            clock.clone(),
            shutdown.clone(),
        ));
    }
    while workers.join_next().await.is_some() {}
}

async fn worker(
    function: Arc<EventFunction>,
    policy: Arc<RetryPolicy>,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    let queue = async_queue_name(function.name());
    let signal = signals.get(&queue);
    let what = format!(
        "the async invocation worker of function `{}`",
        function.name()
    );
    crate::worker::run(
        &what,
        &signal,
        shutdown,
        || {
            let (store, queue) = (store.clone(), queue.clone());
            async move { store.receive(&queue, 1, None).await }
        },
        |messages| {
            let (function, policy, store, signals, queue, clock) = (
                function.clone(),
                policy.clone(),
                store.clone(),
                signals.clone(),
                queue.clone(),
                clock.clone(),
            );
            async move {
                let ctx = Retrying {
                    function: &function,
                    policy: &policy,
                    store: store.as_ref(),
                    signals: &signals,
                    queue: &queue,
                    clock: clock.as_ref(),
                };
                for message in messages {
                    handle(&ctx, message).await;
                }
            }
        },
    )
    .await;
}

/// What handling one retried event needs.
struct Retrying<'a> {
    function: &'a EventFunction,
    policy: &'a RetryPolicy,
    store: &'a dyn QueueStore,
    signals: &'a QueueSignals,
    queue: &'a str,
    /// The store's clock: event age is judged by it.
    clock: &'a dyn Clock,
}

async fn handle(ctx: &Retrying<'_>, message: ReceivedMessage) {
    let Retrying {
        function,
        policy,
        store,
        signals,
        queue,
        clock,
    } = *ctx;
    let name = function.name();
    let age_ms = clock.now_ms().saturating_sub(message.sent_at);
    let (outcome, error) = if too_old(age_ms, policy) {
        tracing::warn!(function = %name, event_id = %message.message_id, age_ms, "async event is older than max_event_age_s; not invoked");
        (
            Settle::RetriesExhausted,
            Some(format!(
                "the event was {age_ms} ms old, over max_event_age_s"
            )),
        )
    } else {
        let event = Event {
            id: message.message_id.clone(),
            source: "nimbus:invoke".to_owned(),
            type_: "nimbus.invoke".to_owned(),
            subject: None,
            time: rfc3339(message.sent_at),
            datacontenttype: message.attributes.get("content-type").cloned(),
            data: message.body.clone(),
            attempt: message.receive_count,
            traceparent: message.attributes.get("traceparent").cloned(),
        };
        let invocation_id = uuid::Uuid::now_v7().to_string();
        let trigger = nimbus_engine::Trigger::new(nimbus_engine::TriggerKind::Async, queue);
        let (succeeded, error) = match function.invoke(vec![event], &invocation_id, trigger).await {
            Ok(failed) if failed.is_empty() => (true, None),
            Ok(_) => (
                false,
                Some("the handler reported the event as failed".to_owned()),
            ),
            Err(e) => (false, Some(e.to_string())),
        };
        let unit = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        (
            settle(succeeded, message.receive_count, policy, unit),
            error,
        )
    };
    let condition = match (&outcome, age_ms) {
        (Settle::Succeeded, _) => "Success",
        (_, age) if too_old(age, policy) => "EventAgeExceeded",
        _ => "RetriesExhausted",
    };
    let destination = match outcome {
        Settle::RetryAfterMs(delay) => {
            let options = NackOptions {
                error,
                visible_after_ms: delay,
            };
            match store.nack(queue, &message.receipt_handle, options).await {
                Ok(()) => function
                    .metrics()
                    .event_retries
                    .with(&[name, "async"])
                    .inc(),
                Err(e) => {
                    tracing::warn!(function = %name, event_id = %message.message_id, "could not schedule the retry: {e}")
                }
            }
            return;
        }
        Settle::Succeeded => policy.on_success.as_ref(),
        Settle::RetriesExhausted => policy.on_failure.as_ref(),
    };
    if let Some(destination) = destination {
        let record = record(name, condition, &message, error.as_deref(), clock.now_ms());
        if let Err(e) = send_record(store, signals, destination, record).await {
            // Keep the event: it will come back and the record be sent again.
            tracing::error!(function = %name, event_id = %message.message_id, "could not deliver the {condition} record: {e}");
            let options = NackOptions {
                error: Some(format!("destination failed: {e}")),
                visible_after_ms: crate::worker::STORE_RETRY.as_millis() as u64,
            };
            let _ = store.nack(queue, &message.receipt_handle, options).await;
            return;
        }
    } else if condition != "Success" {
        tracing::warn!(function = %name, event_id = %message.message_id, "async event dropped ({condition}); no on_failure destination is set");
    }
    if let Err(e) = store.delete(queue, &message.receipt_handle).await {
        tracing::warn!(function = %name, event_id = %message.message_id, "could not settle the async event: {e}");
    }
}

/// The record a destination receives: the outcome, the original event and
/// the error, as JSON.
fn record(
    function: &str,
    condition: &str,
    message: &ReceivedMessage,
    error: Option<&str>,
    now_ms: u64,
) -> Vec<u8> {
    let data = match std::str::from_utf8(&message.body) {
        Ok(text) => json!({ "data": text }),
        Err(_) => {
            json!({ "data_base64": base64::engine::general_purpose::STANDARD.encode(&message.body) })
        }
    };
    json!({
        "version": "1.0",
        "timestamp": rfc3339(now_ms),
        "condition": condition,
        "function": function,
        "event_id": message.message_id,
        "attempts": message.receive_count,
        "event": data,
        "error": error,
    })
    .to_string()
    .into_bytes()
}

async fn send_record(
    store: &dyn QueueStore,
    signals: &QueueSignals,
    destination: &Destination,
    record: Vec<u8>,
) -> Result<(), StoreError> {
    let attributes = BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]);
    match destination {
        Destination::Queue(queue) => {
            let message = SendMessage {
                body: record,
                attributes,
                ..SendMessage::default()
            };
            store.send(queue, vec![message]).await?;
            signals.notify(queue);
        }
        Destination::Function(function) => {
            enqueue(store, signals, function, record, attributes).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_manifest::Backoff;

    fn policy(max_retry_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_retry_attempts,
            max_event_age_s: 60,
            retry_backoff: Backoff {
                initial_ms: 1000,
                multiplier: 2.0,
                max_ms: 10_000,
            },
            on_success: None,
            on_failure: None,
        }
    }

    #[test]
    fn failures_retry_with_backoff_until_the_attempts_run_out() {
        let p = policy(2);
        assert_eq!(settle(true, 1, &p, 0.0), Settle::Succeeded);
        assert_eq!(settle(false, 1, &p, 0.0), Settle::RetryAfterMs(1000));
        assert_eq!(settle(false, 2, &p, 0.0), Settle::RetryAfterMs(2000));
        assert_eq!(settle(false, 3, &p, 0.0), Settle::RetriesExhausted);
        assert_eq!(settle(false, 1, &policy(0), 0.0), Settle::RetriesExhausted);
    }

    #[test]
    fn events_older_than_the_age_limit_are_not_invoked() {
        let p = policy(2);
        assert!(!too_old(60_000, &p));
        assert!(too_old(60_001, &p));
    }
}
