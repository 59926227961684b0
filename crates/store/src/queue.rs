//! Durable queues with SQS semantics: leases with receipt handles, delivery
//! delay, retention, deduplication ids, and a dead-letter queue after
//! `max_receive_count` receives, moved in the same transaction as the receive.

use crate::{StoreResult, Timestamp};
use std::collections::BTreeMap;

/// A queue as declared in the manifest, resolved to concrete values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    /// How long a received message stays invisible to other receivers.
    pub visibility_timeout_ms: u64,
    /// Messages older than this (since first enqueue) are dropped.
    pub retention_ms: u64,
    /// Delay before a newly sent message becomes visible.
    pub delay_ms: u64,
    pub max_message_bytes: usize,
    /// A repeated deduplication id within this window is accepted, not stored.
    pub dedup_window_ms: u64,
    /// After this many receives, the next receive moves the message to
    /// `dead_letter_queue` instead of delivering it.
    pub max_receive_count: Option<u32>,
    pub dead_letter_queue: Option<String>,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendMessage {
    pub body: Vec<u8>,
    /// Overrides the queue's `delay_ms`.
    pub delay_ms: Option<u64>,
    pub dedup_id: Option<String>,
    /// Carried with the message (for example trace context).
    pub attributes: BTreeMap<String, String>,
}

/// The answer to a send, given only once the message is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    pub message_id: String,
    /// True when the dedup id was seen within the window: nothing was stored
    /// and `message_id` is the earlier message's.
    pub deduplicated: bool,
}

/// A message leased to a receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub body: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    /// Proves this lease; needed to delete or change visibility.
    pub receipt_handle: String,
    /// Receives so far, this one included.
    pub receive_count: u32,
    /// When the message was first sent (kept through dead-lettering).
    pub sent_at: Timestamp,
}

/// A message as stored, for inspection (for example of a dead-letter queue)
/// without leasing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub message_id: String,
    pub body: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub sent_at: Timestamp,
    pub receive_count: u32,
    /// The last error a consumer reported for it.
    pub last_error: Option<String>,
    /// The queue it was dead-lettered from, if it was.
    pub source_queue: Option<String>,
}

/// How a consumer gives a leased message back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NackOptions {
    /// Recorded on the message; a dead-letter queue keeps the last one.
    pub error: Option<String>,
    /// When it becomes visible again (0: now), for retry backoff.
    pub visible_after_ms: u64,
}

/// Counts by state, judged by the store's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Age of the oldest message (by `sent_at`), if any.
    pub oldest_age_ms: Option<u64>,
}

#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Creates or updates queues; queues not listed are left alone.
    async fn declare_queues(&self, queues: &[QueueConfig]) -> StoreResult<()>;

    /// Sends messages; each receipt is given only once its message is durable.
    async fn send(&self, queue: &str, messages: Vec<SendMessage>) -> StoreResult<Vec<SendReceipt>>;

    /// Leases up to `max` visible messages, oldest first. A message past its
    /// queue's `max_receive_count` moves to the dead-letter queue in the same
    /// transaction instead of being returned.
    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility_timeout_ms: Option<u64>,
    ) -> StoreResult<Vec<ReceivedMessage>>;

    /// Deletes a leased message; the handle must be the current one.
    async fn delete(&self, queue: &str, receipt_handle: &str) -> StoreResult<()>;

    /// Sets when a leased message becomes visible again, from now.
    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout_ms: u64,
    ) -> StoreResult<()>;

    /// Gives a leased message back, recording the error.
    async fn nack(
        &self,
        queue: &str,
        receipt_handle: &str,
        options: NackOptions,
    ) -> StoreResult<()>;

    /// Removes every message; returns how many.
    async fn purge(&self, queue: &str) -> StoreResult<u64>;

    async fn stats(&self, queue: &str) -> StoreResult<QueueStats>;

    /// Lists messages without leasing them, oldest first, after `after_id`.
    async fn peek(
        &self,
        queue: &str,
        limit: u32,
        after_id: Option<&str>,
    ) -> StoreResult<Vec<StoredMessage>>;

    /// Deletes a message by id, leased or not (for operators, e.g. on a DLQ).
    async fn delete_by_id(&self, queue: &str, message_id: &str) -> StoreResult<()>;

    /// Moves up to `limit` messages from `from` to `to`, or with `to` absent
    /// each back to the queue it was dead-lettered from (messages without one
    /// stay). Moved messages are visible now, their receive count reset, their
    /// original send time kept. Returns how many moved.
    async fn redrive(&self, from: &str, to: Option<&str>, limit: u32) -> StoreResult<u64>;

    /// The declared queues, by name.
    async fn queues(&self) -> StoreResult<Vec<QueueConfig>>;

    /// Drops messages past their queue's retention and expired dedup ids.
    async fn expire(&self) -> StoreResult<u64>;
}

/// Wakes whoever waits for messages on a queue (long-polling receivers, queue
/// triggers) when something is sent to it. The store signals after each
/// commit (see [`crate::Store::signals`]). A wake-up is a hint to look again,
/// never a delivery.
#[derive(Clone, Default)]
pub struct QueueSignals(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Notify>>>,
    >,
);

impl QueueSignals {
    /// The signal for `queue`.
    pub fn get(&self, queue: &str) -> std::sync::Arc<tokio::sync::Notify> {
        self.0
            .lock()
            .unwrap()
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    /// Tells everyone waiting on `queue` to look again.
    pub fn notify(&self, queue: &str) {
        self.get(queue).notify_waiters();
    }

    /// Tells everyone waiting on anything to look again (after wake-ups
    /// may have been missed, say while a listener reconnected).
    pub fn notify_all(&self) {
        let signals: Vec<_> = self.0.lock().unwrap().values().cloned().collect();
        for signal in signals {
            signal.notify_waiters();
        }
    }
}

impl std::fmt::Debug for QueueSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueSignals")
    }
}
