//! Retried delivery from an internal queue: the delivery contract of every
//! source that retries by itself (asynchronous invocation, object events,
//! schedule ticks). Events wait durably on a per-source internal queue;
//! workers take up to `batch_size` of them (waiting up to `batch_window_ms`
//! to fill a batch), invoke the function, and settle each event: a success
//! (or an event the handler did not report as failed) goes to `on_success`,
//! a failure is retried with backoff up to `max_retry_attempts` and then goes
//! to `on_failure`, and an event older than `max_event_age_s` is not invoked
//! but goes to `on_failure` at once.

use base64::Engine as _;
use nimbus_engine::{Event, EventFunction, TriggerKind, rfc3339};
use nimbus_manifest::{Delivery, Destination, RetryPolicy};
use nimbus_store::{
    Clock, NackOptions, QueueSignals, QueueStore, ReceivedMessage, SendMessage, StoreError,
};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Message attributes that override the source's event attributes, so one
/// internal queue can carry events of several types (created and removed
/// objects, for example).
pub const ATTR_SOURCE: &str = "ce-source";
pub const ATTR_TYPE: &str = "ce-type";
pub const ATTR_SUBJECT: &str = "ce-subject";
pub const ATTR_CONTENT_TYPE: &str = "content-type";
pub const ATTR_TRACEPARENT: &str = "traceparent";

/// Where retried events come from and what they look like to the handler.
#[derive(Debug, Clone)]
pub struct RetryingSource {
    /// The internal queue the events wait on.
    pub queue: String,
    /// What the invocation record names as its trigger.
    pub kind: TriggerKind,
    /// The invocation record's source (a queue, bucket or schedule name).
    pub name: String,
    /// The event's CloudEvents `source` unless the message says otherwise.
    pub event_source: String,
    /// The event's CloudEvents `type` unless the message says otherwise.
    pub event_type: String,
}

/// How the events are delivered and retried.
#[derive(Debug, Clone)]
pub struct RetryingDelivery {
    pub delivery: Delivery,
    pub policy: RetryPolicy,
}

/// What to do with an event after an attempt.
#[derive(Debug, PartialEq)]
pub(crate) enum Settle {
    Succeeded,
    RetryAfterMs(u64),
    RetriesExhausted,
}

/// `attempt` counts from 1; `unit` in [0, 1) draws the jitter.
pub(crate) fn settle(succeeded: bool, attempt: u32, policy: &RetryPolicy, unit: f64) -> Settle {
    if succeeded {
        Settle::Succeeded
    } else if attempt > policy.max_retry_attempts {
        Settle::RetriesExhausted
    } else {
        Settle::RetryAfterMs(policy.retry_backoff.jittered_ms(attempt, unit))
    }
}

pub(crate) fn too_old(age_ms: u64, policy: &RetryPolicy) -> bool {
    age_ms > policy.max_event_age_s * 1000
}

/// Runs `delivery.max_concurrency` workers for one retrying source until
/// `shutdown`; batches in flight finish first.
pub async fn run_retrying(
    function: Arc<EventFunction>,
    source: RetryingSource,
    delivery: RetryingDelivery,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Retrying {
        function,
        source,
        delivery,
        store,
        signals,
        clock,
    });
    let mut workers = JoinSet::new();
    for _ in 0..ctx.delivery.delivery.max_concurrency.max(1) {
        workers.spawn(worker(ctx.clone(), shutdown.clone()));
    }
    while workers.join_next().await.is_some() {}
}

/// What handling retried events needs.
struct Retrying {
    function: Arc<EventFunction>,
    source: RetryingSource,
    delivery: RetryingDelivery,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    /// The store's clock: event age is judged by it.
    clock: Arc<dyn Clock>,
}

async fn worker(ctx: Arc<Retrying>, shutdown: watch::Receiver<bool>) {
    let signal = ctx.signals.get(&ctx.source.queue);
    let what = format!(
        "the {} worker of function `{}` on `{}`",
        ctx.source.kind.as_str(),
        ctx.function.name(),
        ctx.source.name
    );
    crate::worker::run(
        &what,
        &signal,
        shutdown,
        || {
            let ctx = ctx.clone();
            async move { collect_batch(&ctx).await }
        },
        |batch| {
            let ctx = ctx.clone();
            async move { deliver(&ctx, batch).await }
        },
    )
    .await;
}

/// Leases up to `batch_size` events; once the first arrives, keeps receiving
/// until the batch is full or `batch_window_ms` has passed.
async fn collect_batch(ctx: &Retrying) -> Result<Vec<ReceivedMessage>, StoreError> {
    let delivery = &ctx.delivery.delivery;
    let queue = &ctx.source.queue;
    let mut batch = ctx.store.receive(queue, delivery.batch_size, None).await?;
    if batch.is_empty() || delivery.batch_window_ms == 0 {
        return Ok(batch);
    }
    let window_end = tokio::time::Instant::now() + Duration::from_millis(delivery.batch_window_ms);
    while (batch.len() as u32) < delivery.batch_size && tokio::time::Instant::now() < window_end {
        let want = delivery.batch_size - batch.len() as u32;
        let more = ctx.store.receive(queue, want, None).await?;
        if more.is_empty() {
            let next_poll = tokio::time::Instant::now() + crate::worker::IDLE_POLL;
            tokio::time::sleep_until(window_end.min(next_poll)).await;
        }
        batch.extend(more);
    }
    Ok(batch)
}

fn event(source: &RetryingSource, message: &ReceivedMessage) -> Event {
    let attribute = |name: &str| message.attributes.get(name).cloned();
    Event {
        id: message.message_id.clone(),
        source: attribute(ATTR_SOURCE).unwrap_or_else(|| source.event_source.clone()),
        type_: attribute(ATTR_TYPE).unwrap_or_else(|| source.event_type.clone()),
        subject: attribute(ATTR_SUBJECT),
        time: rfc3339(message.sent_at),
        datacontenttype: attribute(ATTR_CONTENT_TYPE),
        data: message.body.clone(),
        attempt: message.receive_count,
        traceparent: attribute(ATTR_TRACEPARENT),
    }
}

/// Invokes the function once with the events young enough to run, then
/// settles every event of the batch.
async fn deliver(ctx: &Retrying, batch: Vec<ReceivedMessage>) {
    let policy = &ctx.delivery.policy;
    let now = ctx.clock.now_ms();
    let (expired, live): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|m| too_old(now.saturating_sub(m.sent_at), policy));
    for message in expired {
        let age_ms = now.saturating_sub(message.sent_at);
        tracing::warn!(function = %ctx.function.name(), event_id = %message.message_id, age_ms, "event is older than max_event_age_s; not invoked");
        let error = format!("the event was {age_ms} ms old, over max_event_age_s");
        finish(ctx, &message, "EventAgeExceeded", Some(&error)).await;
    }
    if live.is_empty() {
        return;
    }
    let events = live.iter().map(|m| event(&ctx.source, m)).collect();
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let trigger = nimbus_engine::Trigger::new(ctx.source.kind, ctx.source.name.as_str());
    let outcome = ctx.function.invoke(events, &invocation_id, trigger).await;
    let (failed, error): (HashSet<String>, Option<String>) = match outcome {
        Ok(reported) if reported.is_empty() => (HashSet::new(), None),
        Ok(reported) if ctx.delivery.delivery.report_batch_item_failures => (
            reported.into_iter().collect(),
            Some("the handler reported the event as failed".to_owned()),
        ),
        Ok(_) => (
            live.iter().map(|m| m.message_id.clone()).collect(),
            Some("the handler reported failed events".to_owned()),
        ),
        Err(e) => (
            live.iter().map(|m| m.message_id.clone()).collect(),
            Some(e.to_string()),
        ),
    };
    for message in &live {
        if !failed.contains(&message.message_id) {
            finish(ctx, message, "Success", None).await;
            continue;
        }
        let unit = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        match settle(false, message.receive_count, policy, unit) {
            Settle::RetryAfterMs(delay) => retry(ctx, message, error.clone(), delay).await,
            _ => finish(ctx, message, "RetriesExhausted", error.as_deref()).await,
        }
    }
}

async fn retry(ctx: &Retrying, message: &ReceivedMessage, error: Option<String>, delay: u64) {
    let options = NackOptions {
        error,
        visible_after_ms: delay,
    };
    match ctx
        .store
        .nack(&ctx.source.queue, &message.receipt_handle, options)
        .await
    {
        Ok(()) => ctx
            .function
            .metrics()
            .event_retries
            .with(&[ctx.function.name(), ctx.source.kind.as_str()])
            .inc(),
        Err(e) => {
            tracing::warn!(function = %ctx.function.name(), event_id = %message.message_id, "could not schedule the retry: {e}")
        }
    }
}

/// Sends the outcome's record to its destination, if one is set, and then
/// removes the event; if the record cannot be sent the event stays, to come
/// back and be sent again.
async fn finish(ctx: &Retrying, message: &ReceivedMessage, condition: &str, error: Option<&str>) {
    let name = ctx.function.name();
    let policy = &ctx.delivery.policy;
    let destination = if condition == "Success" {
        policy.on_success.as_ref()
    } else {
        policy.on_failure.as_ref()
    };
    if let Some(destination) = destination {
        let record = record(name, condition, message, error, ctx.clock.now_ms());
        if let Err(e) = send_record(ctx.store.as_ref(), destination, record).await {
            tracing::error!(function = %name, event_id = %message.message_id, "could not deliver the {condition} record: {e}");
            let options = NackOptions {
                error: Some(format!("destination failed: {e}")),
                visible_after_ms: crate::worker::STORE_RETRY.as_millis() as u64,
            };
            let _ = ctx
                .store
                .nack(&ctx.source.queue, &message.receipt_handle, options)
                .await;
            return;
        }
    } else if condition != "Success" {
        tracing::warn!(function = %name, event_id = %message.message_id, "event dropped ({condition}); no on_failure destination is set");
    }
    if let Err(e) = ctx
        .store
        .delete(&ctx.source.queue, &message.receipt_handle)
        .await
    {
        tracing::warn!(function = %name, event_id = %message.message_id, "could not settle the event: {e}");
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
        "event_type": message.attributes.get(ATTR_TYPE),
        "subject": message.attributes.get(ATTR_SUBJECT),
        "attempts": message.receive_count,
        "event": data,
        "error": error,
    })
    .to_string()
    .into_bytes()
}

/// Sends a record to a destination: a queue, or a function's async queue.
pub async fn send_record(
    store: &dyn QueueStore,
    destination: &Destination,
    record: Vec<u8>,
) -> Result<(), StoreError> {
    let attributes =
        BTreeMap::from([(ATTR_CONTENT_TYPE.to_owned(), "application/json".to_owned())]);
    match destination {
        Destination::Queue(queue) => {
            let message = SendMessage {
                body: record,
                attributes,
                ..SendMessage::default()
            };
            store.send(queue, vec![message]).await?;
        }
        Destination::Function(function) => {
            crate::invoke::enqueue(store, function, record, attributes).await?;
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
