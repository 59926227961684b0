//! Durable queues with SQS semantics: leases with receipt handles, delivery
//! delay, retention, deduplication ids, and a dead-letter queue after
//! `max_receive_count` receives, moved in the same transaction as the receive.

use crate::{StoreError, StoreResult, Timestamp};
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

/// Most attributes one message carries, as in SQS, not counting
/// [`TRACEPARENT_ATTRIBUTE`], which Nimbus sets itself.
pub const MAX_ATTRIBUTES: usize = 10;
/// Longest attribute name, in bytes (SQS: 256 characters).
pub const MAX_ATTRIBUTE_NAME_BYTES: usize = 256;
/// Longest deduplication id (SQS: 128 characters).
pub const MAX_DEDUP_ID_BYTES: usize = 128;
/// The attribute carrying a message's W3C trace context.
pub const TRACEPARENT_ATTRIBUTE: &str = "traceparent";
/// How much of a refused name or id an error quotes.
const QUOTED_BYTES: usize = 64;

/// Checks a message against the queue's limits before anything is stored;
/// every backend calls it on every message of a send. As in SQS:
/// attributes count toward `max_message_bytes` (body, plus each name and
/// value); at most [`MAX_ATTRIBUTES`] attributes besides `traceparent`;
/// names of 1 to 256 bytes of `A-Z a-z 0-9 _ - .`, neither starting nor
/// ending with `.` nor holding `..`; a `dedup_id` of 1 to 128 characters,
/// each an ASCII letter, digit or punctuation mark. An empty body is
/// allowed (unlike SQS): a message may be a bare signal, and an
/// asynchronous invocation may carry no payload.
pub fn check_message(config: &QueueConfig, message: &SendMessage) -> StoreResult<()> {
    let counted = message
        .attributes
        .keys()
        .filter(|name| *name != TRACEPARENT_ATTRIBUTE)
        .count();
    if counted > MAX_ATTRIBUTES {
        return Err(StoreError::InvalidMessage(format!(
            "{counted} attributes, over the limit of {MAX_ATTRIBUTES}"
        )));
    }
    for name in message.attributes.keys() {
        check_attribute_name(name)?;
    }
    if let Some(dedup_id) = &message.dedup_id {
        check_dedup_id(dedup_id)?;
    }
    let size = message_size(message);
    if size > config.max_message_bytes {
        return Err(StoreError::MessageTooLarge {
            size,
            limit: config.max_message_bytes,
        });
    }
    Ok(())
}

/// What a message counts against `max_message_bytes`: its body and the
/// bytes of every attribute name and value.
pub fn message_size(message: &SendMessage) -> usize {
    message
        .attributes
        .iter()
        .fold(message.body.len(), |sum, (k, v)| {
            sum.saturating_add(k.len()).saturating_add(v.len())
        })
}

fn check_attribute_name(name: &str) -> StoreResult<()> {
    let invalid = |why: &str| {
        Err(StoreError::InvalidMessage(format!(
            "attribute name `{}` {why}",
            quoted(name)
        )))
    };
    if name.is_empty() {
        return Err(StoreError::InvalidMessage(
            "an attribute name is empty".to_owned(),
        ));
    }
    if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
        return invalid(&format!(
            "is {} bytes, over the limit of {MAX_ATTRIBUTE_NAME_BYTES}",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return invalid("may hold only letters, digits, `_`, `-` and `.`");
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        return invalid("may not start or end with `.` or hold `..`");
    }
    Ok(())
}

fn check_dedup_id(id: &str) -> StoreResult<()> {
    if id.is_empty() {
        return Err(StoreError::InvalidMessage("`dedup_id` is empty".to_owned()));
    }
    if id.len() > MAX_DEDUP_ID_BYTES {
        return Err(StoreError::InvalidMessage(format!(
            "`dedup_id` is {} bytes, over the limit of {MAX_DEDUP_ID_BYTES}",
            id.len()
        )));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::InvalidMessage(format!(
            "`dedup_id` `{}` may hold only ASCII letters, digits and punctuation",
            quoted(id)
        )));
    }
    Ok(())
}

/// At most [`QUOTED_BYTES`] of `text`, cut on a character boundary.
fn quoted(text: &str) -> String {
    if text.len() <= QUOTED_BYTES {
        return text.to_owned();
    }
    let mut end = QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
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
    /// When the message was first received (this receive, if it is the
    /// first; kept through dead-lettering, forgotten by a redrive, which
    /// also starts the count again).
    pub first_received_at: Timestamp,
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

    /// Every queue, by name, with its counts as of one moment: a message
    /// being dead-lettered is counted in its source queue or in the
    /// dead-letter queue, never in both or neither (reading [`Self::stats`]
    /// queue by queue could show either).
    async fn all_stats(&self) -> StoreResult<Vec<(QueueConfig, QueueStats)>>;

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

    /// Deletes a queue in one transaction: its settings, every message on
    /// it (leased or not) and its deduplication ids; returns how many
    /// messages went. Refused with [`StoreError::DeadLetterQueueInUse`]
    /// while another queue names it as its dead-letter queue (that queue
    /// would have nowhere to move messages to); an unknown queue is
    /// [`StoreError::QueueNotFound`].
    async fn delete_queue(&self, queue: &str) -> StoreResult<u64>;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_message_bytes: usize) -> QueueConfig {
        QueueConfig {
            name: "q".into(),
            visibility_timeout_ms: 30_000,
            retention_ms: 60_000,
            delay_ms: 0,
            max_message_bytes,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        }
    }

    fn message(attributes: &[(&str, &str)], dedup_id: Option<&str>) -> SendMessage {
        SendMessage {
            body: b"body".to_vec(),
            delay_ms: None,
            dedup_id: dedup_id.map(str::to_owned),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn invalid(result: StoreResult<()>) -> String {
        match result {
            Err(StoreError::InvalidMessage(why)) => why,
            other => panic!("expected InvalidMessage, got {other:?}"),
        }
    }

    #[test]
    fn attributes_count_toward_the_size_limit() {
        let m = message(&[("ab", "cde"), ("f", "")], None);
        assert_eq!(message_size(&m), 4 + 5 + 1);
        assert_eq!(check_message(&config(10), &m), Ok(()));
        assert_eq!(
            check_message(&config(9), &m),
            Err(StoreError::MessageTooLarge { size: 10, limit: 9 })
        );
        // An 8 MiB value is refused by size, not stored.
        let big = "x".repeat(8 << 20);
        let m = message(&[("big", &big)], None);
        assert!(matches!(
            check_message(&config(256 * 1024), &m),
            Err(StoreError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn an_empty_body_is_allowed() {
        let m = SendMessage::default();
        assert_eq!(check_message(&config(1), &m), Ok(()));
    }

    #[test]
    fn at_most_ten_attributes_besides_traceparent() {
        let names: Vec<String> = (0..=MAX_ATTRIBUTES).map(|i| format!("a{i}")).collect();
        let ten: Vec<(&str, &str)> = names[..MAX_ATTRIBUTES]
            .iter()
            .map(|n| (n.as_str(), "v"))
            .collect();
        assert_eq!(check_message(&config(1024), &message(&ten, None)), Ok(()));
        let mut with_trace = ten.clone();
        with_trace.push((TRACEPARENT_ATTRIBUTE, "00-x-y-01"));
        assert_eq!(
            check_message(&config(1024), &message(&with_trace, None)),
            Ok(())
        );
        let mut eleven = ten;
        eleven.push((names[MAX_ATTRIBUTES].as_str(), "v"));
        let why = invalid(check_message(&config(1024), &message(&eleven, None)));
        assert!(why.contains("11 attributes"), "{why}");
    }

    #[test]
    fn attribute_names_follow_the_sqs_rule() {
        let ok = |name: &str| check_message(&config(4096), &message(&[(name, "v")], None));
        for name in ["a", "A-z_0.9", "trace.id", "content-type", &"n".repeat(256)] {
            assert_eq!(ok(name), Ok(()), "{name}");
        }
        // Every ASCII character outside the set, and non-ASCII letters.
        for byte in 0u8..128 {
            let c = byte as char;
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                continue;
            }
            let why = invalid(ok(&format!("a{c}b")));
            assert!(why.contains("may hold only"), "{byte}: {why}");
        }
        for name in ["é", "名前", "a\u{200b}b"] {
            invalid(ok(name));
        }
        for name in [".a", "a.", "a..b", "."] {
            let why = invalid(ok(name));
            assert!(why.contains("`.`"), "{name}: {why}");
        }
        let why = invalid(ok(&"n".repeat(257)));
        assert!(why.contains("257 bytes"), "{why}");
        assert!(why.len() < 200, "the error quotes only a prefix: {why}");
        let why = invalid(ok(""));
        assert!(why.contains("empty"), "{why}");
    }

    #[test]
    fn dedup_ids_follow_the_sqs_rule() {
        let check = |id: &str| check_message(&config(4096), &message(&[], Some(id)));
        // Every letter, digit and punctuation mark SQS allows.
        let allowed: String = (0x21u8..=0x7e).map(char::from).collect();
        assert_eq!(allowed.len(), 94);
        assert_eq!(check(&allowed), Ok(()));
        assert_eq!(check(&"d".repeat(128)), Ok(()));
        let why = invalid(check(&"d".repeat(129)));
        assert!(why.contains("129 bytes"), "{why}");
        let why = invalid(check(&"d".repeat(8 << 20)));
        assert!(why.len() < 200, "{why}");
        for byte in (0u8..0x21).chain([0x7f]) {
            let why = invalid(check(&format!("a{}b", byte as char)));
            assert!(why.contains("may hold only"), "{byte}: {why}");
        }
        for id in ["é", "id\u{a0}", "名"] {
            invalid(check(id));
        }
        let why = invalid(check(""));
        assert!(why.contains("empty"), "{why}");
    }
}
