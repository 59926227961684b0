//! Object triggers: each `[[trigger.object]]` has an internal queue
//! (`_object.FUNCTION.INDEX`) that the bucket's commits put its events on;
//! `retrying` delivers them with the trigger's delivery and retry settings.

use crate::retrying::{RetryingDelivery, RetryingSource};
use nimbus_engine::{EventFunction, TriggerKind};
use nimbus_manifest::{Function, ObjectTrigger};
use nimbus_store::{Clock, QueueConfig, QueueSignals, QueueStore};
use std::sync::Arc;
use tokio::sync::watch;

/// Slack between the function's deadline and the lease on a batch.
const LEASE_MARGIN_MS: u64 = 30_000;
/// Largest object event: a key of at most 1024 bytes plus a few fields.
const MAX_EVENT_BYTES: usize = 16 * 1024;

/// The internal queue of `trigger`, whose function is `function`.
pub fn object_queue_config(trigger: &ObjectTrigger, function: &Function) -> QueueConfig {
    QueueConfig {
        name: trigger.queue.clone(),
        visibility_timeout_ms: function.timeout_ms + LEASE_MARGIN_MS,
        // Kept past the event age limit, so an expired event is seen and sent
        // to the failure destination rather than silently dropped.
        retention_ms: (trigger.policy.max_event_age_s + 3600) * 1000,
        delay_ms: 0,
        max_message_bytes: MAX_EVENT_BYTES,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

/// Runs one object trigger until `shutdown`.
pub async fn run_object_trigger(
    trigger: ObjectTrigger,
    function: Arc<EventFunction>,
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
) {
    let source = RetryingSource {
        queue: trigger.queue.clone(),
        kind: TriggerKind::Object,
        name: trigger.bucket.clone(),
        event_source: format!("nimbus:bucket/{}", trigger.bucket),
        event_type: "nimbus.object.created".to_owned(),
    };
    let delivery = RetryingDelivery {
        delivery: trigger.delivery,
        policy: trigger.policy,
    };
    crate::retrying::run_retrying(function, source, delivery, store, signals, clock, shutdown)
        .await;
}
