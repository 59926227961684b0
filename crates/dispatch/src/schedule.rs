//! Schedules: a scheduler task per `[[trigger.schedule]]` turns due ticks
//! into events on the schedule's internal queue (`_schedule.NAME`), each
//! tick's mark committed with its event; from there `retrying` delivers
//! them with the shared delivery, retry and destination settings.
//!
//! One node at a time fires a schedule's ticks: the holder of its lease
//! (`schedule:NAME`), whose fires carry the lease's fence. While it runs,
//! the scheduler moves the stored mark up to the time it has seen pass
//! (each second), so the mark tells when a node last ran the schedule.
//! Catch-up (ticks after the mark that came due while no node ran it,
//! judged when a node takes the schedule): `latest` fires the most recent
//! one, `none` skips them, `all` fires them, the most recent
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
    Clock, QueueConfig, QueueSignals, QueueStore, ScheduleStore, SendMessage, StoreError,
    StoreResult,
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
    /// listener is up): ticks due by then and after the stored mark were
    /// missed while no node ran the schedule, later ones come due while it
    /// runs.
    pub started_ms: u64,
    /// When the deployment that runs it went live, by the store's clock: a
    /// schedule no node has registered before exists from then, so ticks
    /// before it never fire.
    pub deployed_ms: u64,
    /// Which node fires the ticks: the holder of the schedule's lease.
    pub ownership: Arc<crate::ownership::Ownership>,
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

/// Runs the schedule's ticks whenever this node holds the schedule's
/// lease, until `shutdown`.
async fn scheduler(
    run: &ScheduleRun,
    ticks: &Ticks,
    queue: &str,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut unit = run.ownership.unit(&schedule_unit(&run.trigger.name));
    let mut first = true;
    while let Some(held) = unit.acquired(&mut shutdown).await {
        // Ticks after the stored mark and due before the hold began came
        // due while no node ran the schedule: the catch-up policy decides.
        // The first hold in this process counts from the process start (read
        // before any listener was up), so nothing done meanwhile is missed.
        let since = if first {
            run.started_ms
        } else {
            run.clock.now_ms()
        };
        first = false;
        let mut holding = Holding {
            run,
            ticks,
            queue,
            shutdown: &mut shutdown,
            unit: &mut unit,
            held,
        };
        holding.schedule(since).await;
        unit.done();
    }
}

/// The lease of schedule `name`: one node at a time fires its ticks.
pub fn schedule_unit(name: &str) -> String {
    format!("schedule:{name}")
}

/// How often a running scheduler moves the stored mark up to the time it
/// has seen pass without a tick: the mark then tells how long no node ran
/// the schedule.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// A scheduler while this node holds the schedule.
struct Holding<'a> {
    run: &'a ScheduleRun,
    ticks: &'a Ticks,
    queue: &'a str,
    shutdown: &'a mut watch::Receiver<bool>,
    unit: &'a mut crate::ownership::Unit,
    held: crate::ownership::Held,
}

impl Holding<'_> {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || !self.unit.holds(&self.held)
    }

    /// Retries a store call until it succeeds; `None` if the hold ends or
    /// the call is fenced off first.
    async fn until_ok<T, F>(&mut self, mut call: impl FnMut() -> F) -> Option<T>
    where
        F: Future<Output = StoreResult<T>>,
    {
        let name = self.run.trigger.name.clone();
        while !self.stopping() {
            match call().await {
                Ok(value) => return Some(value),
                Err(e @ StoreError::Fenced { .. }) => {
                    tracing::warn!(schedule = %name, "stopping the scheduler here: {e}");
                    return None;
                }
                Err(e) => {
                    tracing::error!(schedule = %name, "schedule store call failed: {e}");
                    self.wait(crate::worker::STORE_RETRY).await;
                }
            }
        }
        None
    }

    /// Sleeps `delay`, or less if shutdown comes or the hold changes.
    async fn wait(&mut self, delay: Duration) {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = self.shutdown.changed() => {}
            () = self.unit.changed() => {}
        }
    }

    /// Fires due ticks until the hold ends.
    async fn schedule(&mut self, since: u64) {
        let run = self.run;
        let (ticks, queue) = (self.ticks, self.queue);
        let name = run.trigger.name.as_str();
        let fence = self.held.fence.clone();
        let Some(state) = self
            .until_ok(|| {
                run.schedules
                    .register_schedule(name, since.max(run.deployed_ms))
            })
            .await
        else {
            return;
        };
        let mut mark = state.mark_ms;
        let missed = ticks.due(mark, since, MAX_CATCH_UP_TICKS);
        let mut pending: VecDeque<u64> = match run.trigger.catch_up {
            CatchUp::All => missed.into(),
            CatchUp::Latest => missed.last().copied().into_iter().collect(),
            CatchUp::None => {
                if !missed.is_empty() {
                    tracing::info!(schedule = %name, skipped = missed.len(), "skipping ticks missed while no node ran the schedule (catch_up = \"none\")");
                    if self
                        .until_ok(|| run.schedules.skip_ticks(name, since, Some(&fence)))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    mark = since;
                }
                VecDeque::new()
            }
        };
        if !pending.is_empty() {
            tracing::info!(schedule = %name, ticks = pending.len(), "firing ticks missed while no node ran the schedule");
        }
        let mut beat = tokio::time::Instant::now();
        while !self.stopping() {
            let now = run.clock.now_ms();
            if pending.is_empty() {
                pending = ticks.due(mark, now, MAX_CATCH_UP_TICKS).into();
            }
            let mut failed = false;
            while let Some(&tick) = pending.front() {
                let message = tick_message(run, ticks, tick);
                match run
                    .schedules
                    .fire(name, tick, queue, message, Some(&fence))
                    .await
                {
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
                    Err(e @ StoreError::Fenced { .. }) => {
                        tracing::warn!(schedule = %name, "stopping the scheduler here: {e}");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(schedule = %name, "could not fire a tick: {e}");
                        failed = true;
                        break;
                    }
                }
            }
            // Every tick due by `now` has fired: the mark may move to it.
            if !failed && mark < now && beat.elapsed() >= HEARTBEAT {
                beat = tokio::time::Instant::now();
                match run.schedules.skip_ticks(name, now, Some(&fence)).await {
                    Ok(_) => mark = now,
                    Err(e @ StoreError::Fenced { .. }) => {
                        tracing::warn!(schedule = %name, "stopping the scheduler here: {e}");
                        return;
                    }
                    Err(e) => tracing::debug!(schedule = %name, "could not move the mark: {e}"),
                }
            }
            let wait = if pending.is_empty() {
                ticks.next_after(mark.max(now)).map_or(POLL, |next| {
                    Duration::from_millis(next.saturating_sub(now)).min(POLL)
                })
            } else {
                crate::worker::STORE_RETRY
            };
            self.wait(wait).await;
        }
    }
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

/// One `[[trigger.schedule]]` as a [`Trigger`].
///
/// [`Trigger`]: crate::trigger::Trigger
pub struct Schedule(pub ScheduleTrigger);

impl crate::trigger::Trigger for Schedule {
    fn subject(&self) -> String {
        format!("schedule `{}`", self.0.name)
    }

    fn describe(&self) -> Option<String> {
        let t = &self.0;
        Some(format!(
            "schedule {} {} ({}) -> {}",
            t.name,
            t.expression.describe(),
            t.timezone,
            t.function
        ))
    }

    fn function(&self) -> &str {
        &self.0.function
    }

    fn destinations(&self) -> Vec<&str> {
        crate::trigger::destination_functions(&self.0.retry)
    }

    fn queues(&self, app: &nimbus_manifest::App) -> Vec<QueueConfig> {
        vec![schedule_queue_config(
            &self.0,
            &app.functions[&self.0.function],
        )]
    }

    fn start(&self, ctx: &crate::trigger::TriggerContext, tasks: &mut tokio::task::JoinSet<()>) {
        let run = ScheduleRun {
            trigger: self.0.clone(),
            function: ctx.function(&self.0.function),
            queues: ctx.store.clone(),
            schedules: ctx.store.clone(),
            signals: ctx.store.signals().clone(),
            clock: ctx.clock.clone(),
            started_ms: ctx.started_ms,
            deployed_ms: ctx.deployed_ms,
            ownership: ctx.ownership.clone(),
            tracer: ctx.tracer.clone(),
        };
        tasks.spawn(run_schedule(run, ctx.stopped.clone()));
    }
}
