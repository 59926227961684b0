//! Object triggers: each `[[trigger.object]]` has an internal queue
//! (`_object.FUNCTION.ID`) that the bucket's commits put its events on;
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

/// Where an object trigger's events waited before internal queues were
/// named by trigger id: by its position among the `[[trigger.object]]`
/// tables.
fn legacy_queue_name(function: &str, index: usize) -> String {
    format!("_object.{function}.{index}")
}

/// Most events moved from a legacy queue per request.
const LEGACY_MOVE_BATCH: u32 = 1000;

/// One `[[trigger.object]]` as a [`Trigger`], with its position in the
/// manifest (for the queue older versions named by it).
pub struct Object {
    pub trigger: ObjectTrigger,
    pub index: usize,
}

impl crate::trigger::Trigger for Object {
    fn subject(&self) -> String {
        format!("the object trigger on bucket `{}`", self.trigger.bucket)
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "object {} -> {}",
            self.trigger.bucket, self.trigger.function
        ))
    }

    fn function(&self) -> &str {
        &self.trigger.function
    }

    fn destinations(&self) -> Vec<&str> {
        crate::trigger::destination_functions(&self.trigger.policy)
    }

    fn queues(&self, app: &nimbus_manifest::App) -> Vec<QueueConfig> {
        vec![object_queue_config(
            &self.trigger,
            &app.functions[&self.trigger.function],
        )]
    }

    /// Events a version before trigger ids left waiting on the queue named
    /// by position move to the trigger's own queue (an upgrade keeps the
    /// manifest, so the position still names this trigger).
    fn prepare<'a>(&'a self, store: &'a dyn nimbus_store::Store) -> crate::trigger::Prepare<'a> {
        Box::pin(async move {
            let legacy = legacy_queue_name(&self.trigger.function, self.index);
            if !store.queues().await?.iter().any(|q| q.name == legacy) {
                return Ok(());
            }
            let mut moved = 0;
            loop {
                let n = store
                    .redrive(&legacy, Some(&self.trigger.queue), LEGACY_MOVE_BATCH)
                    .await?;
                moved += n;
                if n < u64::from(LEGACY_MOVE_BATCH) {
                    break;
                }
            }
            if moved > 0 {
                tracing::info!(
                    from = %legacy,
                    to = %self.trigger.queue,
                    "moved {moved} waiting object events to the trigger's queue"
                );
            }
            Ok(())
        })
    }

    fn start(&self, ctx: &crate::trigger::TriggerContext, tasks: &mut tokio::task::JoinSet<()>) {
        tasks.spawn(run_object_trigger(
            self.trigger.clone(),
            ctx.function(&self.trigger.function),
            ctx.store.clone(),
            ctx.store.signals().clone(),
            ctx.clock.clone(),
            ctx.stopped.clone(),
        ));
    }
}
