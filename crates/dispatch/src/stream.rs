//! Stream triggers: a table's change records reach the function in the
//! order they were written. Keys are spread over `max_concurrency` lanes by
//! hash, each lane one sequential reader with its own checkpoint, so lanes
//! run in parallel and one key's records never overtake each other. A batch
//! that fails is retried from its lowest failed record (with
//! `report_batch_item_failures`) or whole, optionally bisected to isolate
//! the record that fails; after `max_retry_attempts` the records go to the
//! `on_failure` destination and the lane moves on. Records older than
//! `max_event_age_s` go there without being invoked. The checkpoint moves
//! only past settled records, and it is stored, so a restart resumes.

use crate::ownership::{Held, Ownership, Unit};
use crate::retrying::send_record;
use crate::worker::{Failures, IDLE_POLL, STORE_RETRY};
use nimbus_engine::{Event, EventFunction, InvokeError, TriggerKind, rfc3339};
use nimbus_manifest::{StartingPosition, StreamTrigger};
use nimbus_store::table::stream_signal;
use nimbus_store::{
    ChangeKind, ChangeRecord, Clock, Lane, QueueSignals, QueueStore, StoreError, TableStore,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the lanes of one stream trigger share.
pub struct StreamServices {
    pub tables: Arc<dyn TableStore>,
    /// For the `on_failure` destination.
    pub queues: Arc<dyn QueueStore>,
    pub signals: QueueSignals,
    pub clock: Arc<dyn Clock>,
    /// Which lanes this node runs: each lane is a unit held by lease, so
    /// one node at a time reads it.
    pub ownership: Arc<Ownership>,
}

/// Pins where each lane of `trigger` starts, if it has no checkpoint yet.
/// Called before the server reports it is ready, so `starting_position =
/// "latest"` means every write acknowledged after that, not whatever the
/// lanes happen to find when they first run.
pub async fn pin_start(trigger: &StreamTrigger, tables: &dyn TableStore) -> Result<(), StoreError> {
    let lanes = trigger.delivery.max_concurrency.max(1);
    for index in 0..lanes {
        start_position(trigger, tables, Lane { index, lanes }).await?;
    }
    Ok(())
}

/// Under the table's consumer prefix, so deleting the table finds the
/// checkpoints.
fn consumer_prefix(trigger: &StreamTrigger) -> String {
    format!(
        "{}{}:",
        nimbus_store::table::stream_consumer_prefix(&trigger.table),
        trigger.function
    )
}

fn consumer(trigger: &StreamTrigger, lane: Lane) -> String {
    format!("{}{}/{}", consumer_prefix(trigger), lane.index, lane.lanes)
}

/// Where a lane starts: its checkpoint; else, if the trigger ran with
/// another number of lanes, the lowest of those checkpoints (so nothing is
/// skipped; some records may come again); else the trigger's starting
/// position, stored at once so a restart keeps it.
async fn start_position(
    trigger: &StreamTrigger,
    tables: &dyn TableStore,
    lane: Lane,
) -> Result<u64, StoreError> {
    if let Some(seq) = tables.checkpoint(&consumer(trigger, lane)).await? {
        return Ok(seq);
    }
    let earlier = tables.checkpoints(&consumer_prefix(trigger)).await?;
    let start = match earlier.iter().map(|(_, seq)| *seq).min() {
        Some(lowest) => lowest,
        None => match trigger.starting_position {
            StartingPosition::Oldest => 0,
            StartingPosition::Latest => tables.latest_seq(&trigger.table).await?,
            StartingPosition::At(ms) => tables.seq_before_time(&trigger.table, ms).await?,
        },
    };
    tables
        .set_checkpoint(&consumer(trigger, lane), start, None)
        .await?;
    Ok(start)
}

/// Runs one stream trigger's lanes until `shutdown`; batches in flight
/// finish (or stop at their next retry wait) first.
pub async fn run_stream_trigger(
    trigger: StreamTrigger,
    function: Arc<EventFunction>,
    services: Arc<StreamServices>,
    shutdown: watch::Receiver<bool>,
) {
    let trigger = Arc::new(trigger);
    let lanes = trigger.delivery.max_concurrency.max(1);
    let mut workers = JoinSet::new();
    for index in 0..lanes {
        let lane = Lane { index, lanes };
        let unit = services.ownership.unit(&consumer(&trigger, lane));
        let lane = LaneWorker {
            trigger: trigger.clone(),
            function: function.clone(),
            services: services.clone(),
            lane,
            shutdown: shutdown.clone(),
            unit,
            held: None,
        };
        workers.spawn(lane.run());
    }
    while workers.join_next().await.is_some() {}
}

struct LaneWorker {
    trigger: Arc<StreamTrigger>,
    function: Arc<EventFunction>,
    services: Arc<StreamServices>,
    lane: Lane,
    shutdown: watch::Receiver<bool>,
    /// The lane's lease, and this node's hold on it while it runs the lane.
    unit: Unit,
    held: Option<Held>,
}

/// How one invocation of a batch went.
enum Outcome {
    Succeeded,
    /// Records from `index` on are not done; `partial` when the handler
    /// named them (so the failure is theirs, not the batch's).
    Failed {
        index: usize,
        error: String,
        partial: bool,
    },
}

impl LaneWorker {
    fn consumer(&self) -> String {
        consumer(&self.trigger, self.lane)
    }

    /// At shutdown, or once this node no longer holds the lane.
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || !self.held.as_ref().is_some_and(|h| self.unit.holds(h))
    }

    async fn start(&self) -> Result<u64, StoreError> {
        start_position(&self.trigger, self.services.tables.as_ref(), self.lane).await
    }

    /// Runs the lane whenever this node holds it, from its checkpoint.
    async fn run(mut self) {
        let mut shutdown = self.shutdown.clone();
        while let Some(held) = self.unit.acquired(&mut shutdown).await {
            self.held = Some(held);
            self.run_held().await;
            self.held = None;
            self.unit.done();
        }
    }

    /// Reads and delivers until shutdown or until the hold is lost.
    async fn run_held(&mut self) {
        let what = format!(
            "the stream trigger of function `{}` on table `{}`",
            self.trigger.function, self.trigger.table
        );
        let signal = self
            .services
            .signals
            .get(&stream_signal(&self.trigger.table));
        let mut failures = Failures::default();
        let mut position = loop {
            match self.start().await {
                Ok(seq) => break seq,
                Err(e) => {
                    failures.failed(&what, "cannot read its checkpoint", &e);
                    if self.pause(STORE_RETRY).await {
                        return;
                    }
                }
            }
        };
        let batch_size = self.trigger.delivery.batch_size;
        while !self.stopping() {
            let notified = signal.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let read = self
                .services
                .tables
                .read_stream(&self.trigger.table, position, batch_size, Some(self.lane))
                .await;
            let mut records = match read {
                Ok(records) => {
                    failures.succeeded(&what);
                    records
                }
                Err(e) => {
                    failures.failed(&what, "cannot read the stream", &e);
                    if self.pause(STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            if records.is_empty() {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.shutdown.changed() => {}
                    () = self.unit.changed() => {}
                }
                continue;
            }
            if let Err(e) = self.fill(&mut records).await {
                tracing::error!("{what} cannot read the stream: {e}");
            }
            self.deliver(&records, &mut position).await;
        }
    }

    /// Waits up to `batch_window_ms` for more records to fill the batch.
    async fn fill(&self, records: &mut Vec<ChangeRecord>) -> Result<(), StoreError> {
        let delivery = &self.trigger.delivery;
        if delivery.batch_window_ms == 0 {
            return Ok(());
        }
        let end = tokio::time::Instant::now() + Duration::from_millis(delivery.batch_window_ms);
        while (records.len() as u32) < delivery.batch_size && tokio::time::Instant::now() < end {
            tokio::time::sleep_until(end.min(tokio::time::Instant::now() + IDLE_POLL)).await;
            let after = records.last().map_or(0, |r| r.seq);
            let want = delivery.batch_size - records.len() as u32;
            let more = self
                .services
                .tables
                .read_stream(&self.trigger.table, after, want, Some(self.lane))
                .await?;
            records.extend(more);
        }
        Ok(())
    }

    /// Sleeps `delay` unless shutdown or the loss of the lane comes first;
    /// true if the lane must stop.
    async fn pause(&mut self, delay: Duration) -> bool {
        let end = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(end) => return self.stopping(),
                _ = self.shutdown.changed() => return true,
                () = self.unit.changed() => if self.stopping() { return true },
            }
        }
    }

    /// Marks every record up to `seq` done, under the lane's fence.
    async fn advance(&mut self, position: &mut u64, seq: u64, last_at: u64) {
        *position = seq;
        let fence = self.held.as_ref().map(|h| h.fence.clone());
        match self
            .services
            .tables
            .set_checkpoint(&self.consumer(), seq, fence.as_ref())
            .await
        {
            Ok(()) => {}
            Err(e @ StoreError::Fenced { .. }) => {
                // Another node runs the lane now; it goes on from the
                // checkpoint it found, and this node stops.
                tracing::warn!(consumer = %self.consumer(), "stopping the lane: {e}");
                self.held = None;
            }
            // The records are done; if the checkpoint is lost they come
            // again (at-least-once).
            Err(e) => {
                tracing::warn!(consumer = %self.consumer(), "could not store the checkpoint: {e}")
            }
        }
        let age_s = self.services.clock.now_ms().saturating_sub(last_at) / 1000;
        self.function
            .metrics()
            .stream_iterator_age
            .with(&[&self.trigger.table, &self.trigger.function])
            .set(age_s as i64);
    }

    fn count(&self, outcome: &str, n: usize) {
        self.function
            .metrics()
            .stream_records
            .with(&[&self.trigger.table, &self.trigger.function, outcome])
            .inc_by(n as u64);
    }

    /// Settles every record of `slice` in order (or stops at shutdown),
    /// moving `position` past each as it is settled.
    async fn deliver(&mut self, slice: &[ChangeRecord], position: &mut u64) {
        let retry = self.trigger.retry.clone();
        let mut start = 0;
        let mut attempt = 1;
        while start < slice.len() && !self.stopping() {
            let now = self.services.clock.now_ms();
            let expired = slice[start..]
                .iter()
                .take_while(|r| now.saturating_sub(r.at) > retry.max_event_age_s * 1000)
                .count();
            if expired > 0 {
                let old = &slice[start..start + expired];
                let error = "the record was older than max_event_age_s";
                self.give_up(old, "EventAgeExceeded", error, attempt).await;
                self.count("expired", old.len());
                let last = &old[old.len() - 1];
                self.advance(position, last.seq, last.at).await;
                start += expired;
                attempt = 1;
                continue;
            }
            let rest = &slice[start..];
            match self.invoke(rest, attempt).await {
                Outcome::Succeeded => {
                    self.count("success", rest.len());
                    let last = &rest[rest.len() - 1];
                    self.advance(position, last.seq, last.at).await;
                    return;
                }
                Outcome::Failed {
                    index,
                    error,
                    partial,
                } => {
                    if index > 0 {
                        // The records before the lowest failed one are done;
                        // the failed one keeps its attempt count.
                        self.count("success", index);
                        let done = &rest[index - 1];
                        self.advance(position, done.seq, done.at).await;
                        start += index;
                    }
                    let rest = &slice[start..];
                    if !partial && self.trigger.bisect_batch_on_error && rest.len() > 1 {
                        let (first, second) = rest.split_at(rest.len() / 2);
                        Box::pin(self.deliver(first, position)).await;
                        if !self.stopping() {
                            Box::pin(self.deliver(second, position)).await;
                        }
                        return;
                    }
                    if attempt > retry.max_retry_attempts {
                        let failed = if partial { &rest[..1] } else { rest };
                        self.give_up(failed, "RetriesExhausted", &error, attempt)
                            .await;
                        self.count("failed", failed.len());
                        let last = &failed[failed.len() - 1];
                        self.advance(position, last.seq, last.at).await;
                        start += failed.len();
                        attempt = 1;
                        continue;
                    }
                    self.function
                        .metrics()
                        .event_retries
                        .with(&[self.function.name(), "stream"])
                        .inc();
                    let unit = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
                    let delay = retry.retry_backoff.jittered_ms(attempt, unit);
                    if self.pause(Duration::from_millis(delay)).await {
                        return;
                    }
                    attempt += 1;
                }
            }
        }
    }

    async fn invoke(&self, records: &[ChangeRecord], attempt: u32) -> Outcome {
        let events = records
            .iter()
            .map(|r| event(&self.trigger.table, r, attempt))
            .collect();
        let invocation_id = uuid::Uuid::now_v7().to_string();
        let trigger = nimbus_engine::Trigger::new(TriggerKind::Stream, self.trigger.table.as_str());
        match self.function.invoke(events, &invocation_id, trigger).await {
            Ok(failed) if failed.is_empty() => Outcome::Succeeded,
            Ok(failed) if self.trigger.delivery.report_batch_item_failures => {
                let failed: HashSet<String> = failed.into_iter().collect();
                match records
                    .iter()
                    .position(|r| failed.contains(&event_id(&self.trigger.table, r)))
                {
                    Some(index) => Outcome::Failed {
                        index,
                        error: "the handler reported the record as failed".to_owned(),
                        partial: true,
                    },
                    None => {
                        tracing::warn!(%invocation_id, "the handler reported failures for records not in its batch; the batch counts as handled");
                        Outcome::Succeeded
                    }
                }
            }
            Ok(_) => Outcome::Failed {
                index: 0,
                error: "the handler reported failed records (report_batch_item_failures is off, so the batch failed)".to_owned(),
                partial: false,
            },
            Err(e) => Outcome::Failed {
                index: 0,
                error: match &e {
                    InvokeError::Failed(inner) => format!("function failed: {inner}"),
                    other => other.to_string(),
                },
                partial: false,
            },
        }
    }

    /// Sends a record of each given-up change to `on_failure`, if set;
    /// retried until the store takes it (or shutdown), since the lane must
    /// not move past a record whose failure was not recorded.
    async fn give_up(
        &mut self,
        records: &[ChangeRecord],
        condition: &str,
        error: &str,
        attempt: u32,
    ) {
        let Some(destination) = self.trigger.retry.on_failure.clone() else {
            tracing::warn!(
                table = %self.trigger.table,
                function = %self.trigger.function,
                records = records.len(),
                "change records dropped ({condition}): {error}; no on_failure destination is set"
            );
            return;
        };
        for r in records {
            let record = json!({
                "version": "1.0",
                "timestamp": rfc3339(self.services.clock.now_ms()),
                "condition": condition,
                "function": self.trigger.function,
                "table": self.trigger.table,
                "event_id": event_id(&self.trigger.table, r),
                "attempts": attempt,
                "error": error,
                "record": record_data(&self.trigger.table, r),
            })
            .to_string()
            .into_bytes();
            loop {
                let sent =
                    send_record(self.services.queues.as_ref(), &destination, record.clone()).await;
                match sent {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(table = %self.trigger.table, "could not deliver the {condition} record: {e}");
                        if self.pause(STORE_RETRY).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn event_id(table: &str, record: &ChangeRecord) -> String {
    format!("{table}:{}", record.seq)
}

fn image(bytes: &Option<Vec<u8>>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

/// The event data: DynamoDB Streams' record shape, in JSON.
fn record_data(table: &str, record: &ChangeRecord) -> Value {
    let name = match record.kind {
        ChangeKind::Insert => "INSERT",
        ChangeKind::Modify => "MODIFY",
        ChangeKind::Remove => "REMOVE",
    };
    json!({
        "table": table,
        "sequence": record.seq,
        "event_name": name,
        "keys": { "partition": record.key.partition, "sort": record.key.sort },
        "version": record.version,
        "new_image": image(&record.new_image),
        "old_image": image(&record.old_image),
        "time": rfc3339(record.at),
    })
}

fn event(table: &str, record: &ChangeRecord, attempt: u32) -> Event {
    let subject = match &record.key.sort {
        Some(sort) => format!("{}/{sort}", record.key.partition),
        None => record.key.partition.clone(),
    };
    Event {
        id: event_id(table, record),
        source: format!("nimbus:table/{table}"),
        type_: format!("nimbus.table.{}", record.kind.as_str()),
        subject: Some(subject),
        time: rfc3339(record.at),
        datacontenttype: Some("application/json".to_owned()),
        data: record_data(table, record).to_string().into_bytes(),
        attempt,
        traceparent: record.traceparent.clone(),
    }
}

/// One `[[trigger.stream]]` as a [`Trigger`].
///
/// [`Trigger`]: crate::trigger::Trigger
pub struct Stream(pub StreamTrigger);

impl crate::trigger::Trigger for Stream {
    fn subject(&self) -> String {
        format!("the stream trigger on table `{}`", self.0.table)
    }

    fn describe(&self) -> Option<String> {
        Some(format!("stream {} -> {}", self.0.table, self.0.function))
    }

    fn function(&self) -> &str {
        &self.0.function
    }

    fn destinations(&self) -> Vec<&str> {
        crate::trigger::destination_functions(&self.0.retry)
    }

    fn prepare<'a>(&'a self, store: &'a dyn nimbus_store::Store) -> crate::trigger::Prepare<'a> {
        Box::pin(pin_start(&self.0, store))
    }

    fn start(&self, ctx: &crate::trigger::TriggerContext, tasks: &mut JoinSet<()>) {
        let services = Arc::new(StreamServices {
            tables: ctx.store.clone(),
            queues: ctx.store.clone(),
            signals: ctx.store.signals().clone(),
            clock: ctx.clock.clone(),
            ownership: ctx.ownership.clone(),
        });
        tasks.spawn(run_stream_trigger(
            self.0.clone(),
            ctx.function(&self.0.function),
            services,
            ctx.stopped.clone(),
        ));
    }
}
