//! Schedules: a scheduler task per `[[trigger.schedule]]` turns due ticks
//! into events on the schedule's internal queue (`_schedule.NAME`), each
//! tick's mark committed with its event; from there `retrying` delivers
//! them with the shared delivery, retry and destination settings.
//!
//! Catch-up after downtime (ticks that came due while Nimbus was not
//! running, judged when the scheduler starts): `latest` fires the most
//! recent one, `none` skips them, `all` fires them, the most recent
//! `MAX_CATCH_UP_TICKS` at most. While running, every tick fires (if the
//! clock jumps past more than `MAX_CATCH_UP_TICKS`, the most recent ones).

mod ticks;

pub use ticks::Ticks;

use crate::retrying::{
    ATTR_CONTENT_TYPE, ATTR_SUBJECT, ATTR_TRACEPARENT, RetryingDelivery, RetryingSource,
};
use nimbus_engine::{EventFunction, TriggerKind, rfc3339};
use nimbus_manifest::schedule::MAX_CATCH_UP_TICKS;
use nimbus_manifest::{CatchUp, Function, ScheduleTrigger};
use nimbus_store::{
    Clock, QueueConfig, QueueSignals, QueueStore, ScheduleStore, SendMessage, StoreResult,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the scheduler reads the clock when no tick is nearer (so a
/// moved test clock is seen promptly).
pub const POLL: Duration = Duration::from_millis(100);
/// Slack between the function's deadline and the lease on a tick event.
const LEASE_MARGIN_MS: u64 = 30_000;

/// The internal queue of schedule `name`.
pub fn schedule_queue_name(name: &str) -> String {
    format!("_schedule.{name}")
}

/// The internal queue's settings for `trigger`, which runs `function`.
pub fn schedule_queue_config(trigger: &ScheduleTrigger, function: &Function) -> QueueConfig {
    QueueConfig {
        name: schedule_queue_name(&trigger.name),
        visibility_timeout_ms: function.timeout_ms + LEASE_MARGIN_MS,
        // Kept past the event age limit, so an expired tick is seen and sent
        // to the failure destination rather than silently dropped.
        retention_ms: (trigger.retry.max_event_age_s + 3600) * 1000,
        delay_ms: 0,
        max_message_bytes: 64 * 1024,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

/// What one schedule needs to run.
pub struct ScheduleRun {
    pub trigger: ScheduleTrigger,
    pub function: Arc<EventFunction>,
    pub queues: Arc<dyn QueueStore>,
    pub schedules: Arc<dyn ScheduleStore>,
    pub signals: QueueSignals,
    /// The store's clock: ticks come due by it.
    pub clock: Arc<dyn Clock>,
    /// When this process started, by the store's clock (read before any
    /// listener is up): ticks due by then were missed while Nimbus was
    /// stopped, later ones come due while it runs.
    pub started_ms: u64,
    pub tracer: nimbus_trace::Tracer,
}

/// Runs one schedule until `shutdown`: its scheduler and the workers that
/// deliver its ticks.
pub async fn run_schedule(run: ScheduleRun, shutdown: watch::Receiver<bool>) {
    let ticks = match Ticks::new(&run.trigger) {
        Ok(ticks) => ticks,
        Err(e) => {
            tracing::error!(schedule = %run.trigger.name, "schedule not started: {e}");
            return;
        }
    };
    let queue = schedule_queue_name(&run.trigger.name);
    let source = RetryingSource {
        queue: queue.clone(),
        kind: TriggerKind::Schedule,
        name: run.trigger.name.clone(),
        event_source: format!("nimbus:schedule/{}", run.trigger.name),
        event_type: "nimbus.schedule.tick".to_owned(),
    };
    let delivery = RetryingDelivery {
        delivery: run.trigger.delivery.clone(),
        policy: run.trigger.retry.clone(),
    };
    let workers = crate::retrying::run_retrying(
        run.function.clone(),
        source,
        delivery,
        run.queues.clone(),
        run.signals.clone(),
        run.clock.clone(),
        shutdown.clone(),
    );
    tokio::join!(scheduler(&run, &ticks, &queue, shutdown), workers);
}

/// Fires due ticks until `shutdown`.
async fn scheduler(
    run: &ScheduleRun,
    ticks: &Ticks,
    queue: &str,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = run.trigger.name.as_str();
    let Some(state) = until_ok(name, &mut shutdown, || {
        run.schedules.register_schedule(name, run.started_ms)
    })
    .await
    else {
        return;
    };
    let mut mark = state.mark_ms;
    // Ticks missed while Nimbus was not running.
    let started = run.started_ms;
    let missed = ticks.due(mark, started, MAX_CATCH_UP_TICKS);
    let mut pending: VecDeque<u64> = match run.trigger.catch_up {
        CatchUp::All => missed.into(),
        CatchUp::Latest => missed.last().copied().into_iter().collect(),
        CatchUp::None => {
            if !missed.is_empty() {
                tracing::info!(schedule = %name, skipped = missed.len(), "skipping ticks missed while stopped (catch_up = \"none\")");
                if until_ok(name, &mut shutdown, || {
                    run.schedules.skip_ticks(name, started)
                })
                .await
                .is_none()
                {
                    return;
                }
                mark = started;
            }
            VecDeque::new()
        }
    };
    if !pending.is_empty() {
        tracing::info!(schedule = %name, ticks = pending.len(), "firing ticks missed while stopped");
    }
    while !*shutdown.borrow() {
        let now = run.clock.now_ms();
        if pending.is_empty() {
            pending = ticks.due(mark, now, MAX_CATCH_UP_TICKS).into();
        }
        while let Some(&tick) = pending.front() {
            let message = tick_message(run, ticks, tick);
            match run.schedules.fire(name, tick, queue, message).await {
                Ok(fired) => {
                    pending.pop_front();
                    mark = tick;
                    if fired {
                        let lag_s = run.clock.now_ms().saturating_sub(tick) as f64 / 1000.0;
                        run.function
                            .metrics()
                            .schedule_lag
                            .with(&[name])
                            .observe(lag_s);
                        tracing::debug!(schedule = %name, tick = %rfc3339(tick), "tick fired");
                    }
                }
                Err(e) => {
                    tracing::error!(schedule = %name, "could not fire a tick: {e}");
                    break;
                }
            }
        }
        let wait = if pending.is_empty() {
            ticks.next_after(mark.max(now)).map_or(POLL, |next| {
                Duration::from_millis(next.saturating_sub(now)).min(POLL)
            })
        } else {
            crate::worker::STORE_RETRY
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Retries a store call until it succeeds; `None` if shut down first.
async fn until_ok<T, F>(
    name: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut call: impl FnMut() -> F,
) -> Option<T>
where
    F: Future<Output = StoreResult<T>>,
{
    while !*shutdown.borrow() {
        match call().await {
            Ok(value) => return Some(value),
            Err(e) => {
                tracing::error!(schedule = %name, "schedule store call failed: {e}");
                tokio::select! {
                    () = tokio::time::sleep(crate::worker::STORE_RETRY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    None
}

/// The event of one tick: the schedule, the scheduled time (UTC and local)
/// and the expression; each tick starts a new trace.
fn tick_message(run: &ScheduleRun, ticks: &Ticks, tick_ms: u64) -> SendMessage {
    let trigger = &run.trigger;
    let body = serde_json::json!({
        "schedule": trigger.name,
        "scheduled_time": rfc3339(tick_ms),
        "local_time": ticks.local_rfc3339(tick_ms),
        "timezone": trigger.timezone,
        "expression": trigger.expression.describe(),
    });
    let mut span = run.tracer.start(
        format!("schedule {}", trigger.name),
        nimbus_trace::SpanKind::Producer,
        None,
    );
    span.set("nimbus.schedule", trigger.name.clone());
    let traceparent = span.context.to_traceparent();
    span.end();
    SendMessage {
        body: body.to_string().into_bytes(),
        attributes: BTreeMap::from([
            (ATTR_CONTENT_TYPE.to_owned(), "application/json".to_owned()),
            (ATTR_SUBJECT.to_owned(), trigger.name.clone()),
            (ATTR_TRACEPARENT.to_owned(), traceparent),
        ]),
        ..SendMessage::default()
    }
}
