//! Invocation history on the engine's side: what triggered an invocation,
//! the record written when it ends (off the hot path, through a bounded
//! channel to a task that batches them into the store), and the live feed
//! of function output that `nimbus logs --follow` reads.

use nimbus_store::{HistoryStore, InvocationRecord, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Records waiting for the store before new ones are dropped (and counted)
/// rather than making an invocation wait (at most 64 MiB of captured output).
pub const MAX_PENDING_RECORDS: usize = 1024;
/// Records written in one store request.
const MAX_RECORDS_PER_WRITE: usize = 256;
/// How long the writer waits for more records after the first of a batch:
/// a record appears in the history at most this much later, and a busy
/// server pays one commit per batch instead of one per few invocations.
const RECORD_LINGER: Duration = Duration::from_millis(50);
/// Attempts at writing one batch while the store cannot be reached (a
/// database restarting), [`UNAVAILABLE_RETRY`] apart: an outage of up to
/// about half a minute loses no record, a longer one drops the batch (and
/// counts it) rather than stalling the writer for good. Records that arrive
/// meanwhile wait in the channel, up to [`MAX_PENDING_RECORDS`].
const UNAVAILABLE_ATTEMPTS: u32 = 30;
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);
/// Output captured into one record, at most (less if the function's
/// `max_log_bytes` is smaller).
pub const MAX_RECORD_LOG_BYTES: u64 = 64 * 1024;
/// Live lines buffered for followers; one that falls further behind loses
/// lines (and is told how many) instead of slowing functions down.
pub const LIVE_LINES: usize = 1024;
/// Records kept at most by default (`--history-max-records`), whatever the
/// retention: the oldest go first. With
/// at most `MAX_RECORD_LOG_BYTES` of output each, the history stays under
/// about 3 GiB even when every function logs its fill.
pub const MAX_HISTORY_RECORDS: u64 = 50_000;
/// Longest error text kept in a record.
const MAX_ERROR_CHARS: usize = 1024;

/// How an invocation was triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Http,
    Queue,
    Async,
    Invoke,
    Function,
    Stream,
    Object,
    Schedule,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Http => "http",
            TriggerKind::Queue => "queue",
            TriggerKind::Async => "async",
            TriggerKind::Invoke => "invoke",
            TriggerKind::Function => "function",
            TriggerKind::Stream => "stream",
            TriggerKind::Object => "object",
            TriggerKind::Schedule => "schedule",
        }
    }
}

/// What started an invocation, for its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// The route pattern, queue name or calling function.
    pub source: String,
}

impl Trigger {
    pub fn new(kind: TriggerKind, source: impl Into<String>) -> Self {
        Trigger {
            kind,
            source: source.into(),
        }
    }
}

/// One line of function output as it happens.
#[derive(Debug, Clone)]
pub struct LiveLine {
    pub function: Arc<str>,
    pub invocation_id: Arc<str>,
    /// `stdout`, `stderr` or `log:LEVEL`.
    pub stream: Arc<str>,
    pub text: Arc<str>,
}

/// Where invocations leave their records and live output.
pub struct History {
    records: mpsc::Sender<InvocationRecord>,
    live: broadcast::Sender<LiveLine>,
    dropped: AtomicU64,
    metrics: Arc<nimbus_metrics::Metrics>,
    /// This node's id, in every record it leaves.
    node: Arc<str>,
}

impl History {
    /// Starts the task that writes records to `store`, each naming `node`.
    /// Needs a Tokio runtime.
    pub fn start(
        store: Arc<dyn HistoryStore>,
        metrics: Arc<nimbus_metrics::Metrics>,
        node: &str,
    ) -> Arc<Self> {
        // Rendered from the start (as 0), so a dashboard can rely on it.
        metrics.history_records_dropped.with(&[]);
        let (records, mut receiver) = mpsc::channel(MAX_PENDING_RECORDS);
        let writer_metrics = metrics.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_RECORDS_PER_WRITE);
            while receiver.recv_many(&mut batch, MAX_RECORDS_PER_WRITE).await > 0 {
                // Gather what arrives shortly after, so a busy server writes
                // its records in a few large commits rather than one small
                // commit (and fsync) per handful of invocations.
                let linger = tokio::time::sleep(RECORD_LINGER);
                tokio::pin!(linger);
                while batch.len() < MAX_RECORDS_PER_WRITE {
                    let room = MAX_RECORDS_PER_WRITE - batch.len();
                    tokio::select! {
                        received = receiver.recv_many(&mut batch, room) => if received == 0 { break },
                        () = &mut linger => break,
                    }
                }
                write(store.as_ref(), std::mem::take(&mut batch), &writer_metrics).await;
            }
        });
        Arc::new(History {
            records,
            live: broadcast::channel(LIVE_LINES).0,
            dropped: AtomicU64::new(0),
            metrics,
            node: node.into(),
        })
    }

    /// Live output of every function from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveLine> {
        self.live.subscribe()
    }

    /// The node whose invocations these are.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Live followers now.
    pub fn followers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Records dropped so far because the store fell behind.
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, line: impl FnOnce() -> LiveLine) {
        // No follower, no copy of the line.
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(line());
        }
    }

    pub(crate) fn record(&self, record: InvocationRecord) {
        if let Err(mpsc::error::TrySendError::Full(record)) = self.records.try_send(record) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            self.metrics.history_records_dropped.with(&[]).inc();
            // One warning per 1000, so a slow store does not flood the log.
            if dropped % 1000 == 1 {
                tracing::warn!(
                    function = %record.function,
                    invocation_id = %record.id,
                    dropped,
                    "invocation record dropped: {MAX_PENDING_RECORDS} records are already waiting for the store"
                );
            }
        }
    }
}

/// Writes one batch of records, trying again while the store is unavailable
/// (up to [`UNAVAILABLE_ATTEMPTS`]); a batch that cannot be written is
/// dropped and counted.
async fn write(
    store: &dyn HistoryStore,
    records: Vec<InvocationRecord>,
    metrics: &nimbus_metrics::Metrics,
) {
    let count = records.len();
    let mut attempt = 1;
    loop {
        match store.record_invocations(records.clone()).await {
            Ok(()) => return,
            Err(StoreError::Unavailable(e)) if attempt < UNAVAILABLE_ATTEMPTS => {
                if attempt == 1 {
                    tracing::warn!(
                        "cannot store {count} invocation records yet; trying again every {UNAVAILABLE_RETRY:?}: {e}"
                    );
                }
                attempt += 1;
                tokio::time::sleep(UNAVAILABLE_RETRY).await;
            }
            Err(e) => {
                // After a commit whose outcome was unknown the records may be
                // stored already; then this is a duplicate id, not a loss.
                tracing::error!("failed to store {count} invocation records: {e}");
                metrics
                    .history_records_dropped
                    .with(&[])
                    .inc_by(count as u64);
                return;
            }
        }
    }
}

/// The trace id of a W3C `traceparent` (`00-TRACEID-PARENTID-FLAGS`).
pub fn trace_id(traceparent: &str) -> Option<String> {
    let id = traceparent.trim().split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

pub(crate) fn short_error(text: String) -> String {
    clip(text, MAX_ERROR_CHARS)
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
pub(crate) fn clip(text: String, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_is_taken_from_a_valid_traceparent_only() {
        assert_eq!(
            trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id("00-short-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id("garbage"), None);
    }
}
