//! `QueueStore` on SQLite: the schema and one function per operation, each
//! run by the writer inside the batch's transaction. Every operation needs
//! its queue's settings; they come from a cache on the writer thread
//! ([`ConfigCache`]) rather than a lookup per request.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::queue::{
    NackOptions, QueueConfig, QueueStats, QueueStore, ReceivedMessage, SendMessage, SendReceipt,
    StoredMessage,
};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How long queue settings are trusted without reading them again, so a
/// declaration written by another process applies here within that time.
const CONFIG_TTL: Duration = Duration::from_secs(1);

/// Queue settings read recently on the writer thread, by name. Only what a
/// committed or in-progress transaction shows is kept, and anything that may
/// make an entry wrong empties it: a declaration or deletion here, a request
/// that rolls back (its reads may have seen its own undone writes) and a
/// failed commit.
#[derive(Default)]
pub(crate) struct ConfigCache(RefCell<HashMap<String, (QueueConfig, Instant)>>);

impl ConfigCache {
    fn get(&self, name: &str) -> Option<QueueConfig> {
        let cache = self.0.borrow();
        let (config, read) = cache.get(name)?;
        (read.elapsed() < CONFIG_TTL).then(|| config.clone())
    }

    fn put(&self, config: &QueueConfig) {
        self.0
            .borrow_mut()
            .insert(config.name.clone(), (config.clone(), Instant::now()));
    }

    pub(crate) fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS queues (
            name TEXT PRIMARY KEY,
            visibility_timeout_ms INTEGER NOT NULL,
            retention_ms INTEGER NOT NULL,
            delay_ms INTEGER NOT NULL,
            max_message_bytes INTEGER NOT NULL,
            dedup_window_ms INTEGER NOT NULL,
            max_receive_count INTEGER,
            dead_letter_queue TEXT
        );
        CREATE TABLE IF NOT EXISTS messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            queue TEXT NOT NULL,
            body BLOB NOT NULL,
            attributes TEXT NOT NULL,
            sent_at INTEGER NOT NULL,
            visible_at INTEGER NOT NULL,
            receive_count INTEGER NOT NULL DEFAULT 0,
            receipt TEXT,
            last_error TEXT,
            source_queue TEXT
        );
        CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
        CREATE TABLE IF NOT EXISTS dedup (
            queue TEXT NOT NULL,
            dedup_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (queue, dedup_id)
        );",
    )
    .map_err(backend)
}

fn load_queue(tx: &Tx<'_>, name: &str) -> StoreResult<QueueConfig> {
    if let Some(config) = tx.queue_configs.get(name) {
        return Ok(config);
    }
    let config = tx
        .query_row(
            "SELECT visibility_timeout_ms, retention_ms, delay_ms, max_message_bytes,
                    dedup_window_ms, max_receive_count, dead_letter_queue
             FROM queues WHERE name = ?1",
            params![name],
            |row| {
                Ok(QueueConfig {
                    name: name.to_owned(),
                    visibility_timeout_ms: row.get::<_, i64>(0)? as u64,
                    retention_ms: row.get::<_, i64>(1)? as u64,
                    delay_ms: row.get::<_, i64>(2)? as u64,
                    max_message_bytes: row.get::<_, i64>(3)? as usize,
                    dedup_window_ms: row.get::<_, i64>(4)? as u64,
                    max_receive_count: row.get::<_, Option<i64>>(5)?.map(|n| n as u32),
                    dead_letter_queue: row.get(6)?,
                })
            },
        )
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::QueueNotFound(name.to_owned()))?;
    tx.queue_configs.put(&config);
    Ok(config)
}

/// `after_ms` past `now` as a stored time. Durations come from callers, so
/// one past the end of time is clamped there: an overflow here would panic
/// the writer thread and close the store for everyone.
fn later(now: u64, after_ms: u64) -> i64 {
    i64::try_from(now.saturating_add(after_ms)).unwrap_or(i64::MAX)
}

fn encode_attributes(attributes: &BTreeMap<String, String>) -> String {
    serde_json::to_string(attributes).unwrap_or_else(|_| "{}".to_owned())
}

fn decode_attributes(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Version 7: each message's first receive time (for SQS's
/// `ApproximateFirstReceiveTimestamp`). Messages older binaries received
/// have none, and take their next receive's.
pub(crate) fn migrate_first_receive(conn: &Connection) -> StoreResult<()> {
    if !crate::schema::has_column(conn, "messages", "first_received_at")? {
        conn.execute_batch("ALTER TABLE messages ADD COLUMN first_received_at INTEGER;")
            .map_err(backend)?;
    }
    Ok(())
}

/// Version 8: receipt handles name their message's seq, so the index on
/// receipts goes (every receive inserted into it and every delete removed
/// from it, at a random page). Binaries before version 8 still work on the
/// file: their lookups by receipt scan the queue's messages instead.
pub(crate) fn migrate_receipts_by_seq(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch("DROP INDEX IF EXISTS messages_receipt;")
        .map_err(backend)
}

/// A new message id: time-ordered (UUIDv7), so each send appends to the
/// end of the id index instead of dirtying a page at random in it.
fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new receipt handle for the message `seq`: the seq, so the message is
/// found by its key (no index on receipts to keep up at every receive and
/// delete), and a random part, so only this lease's holder knows it. The
/// PostgreSQL store's handles have the same shape.
fn new_receipt(seq: i64) -> String {
    format!("{seq}.{}", uuid::Uuid::new_v4())
}

/// The seq a receipt handle names, if it is one of ours (handles of
/// binaries before schema version 8 name none: they are stale, and their
/// messages come back when their leases end).
fn receipt_seq(receipt: &str) -> Option<i64> {
    receipt.split_once('.')?.0.parse().ok()
}

/// The end of a message's life by its queue's retention.
const LIVE: &str = "m.sent_at + q.retention_ms > ?2";

/// The next visible, live messages of queue ?1 at time ?2 after sequence ?3,
/// at most ?4. (The queue is bound as `+?1`: a bare parameter in an
/// equality beside `ORDER BY` makes SQLite prepare the statement again at
/// every bind; see [`crate::writer::Tx::execute`].)
pub(crate) const RECEIVE: &str =
    "SELECT m.seq, m.message_id, m.body, m.attributes, m.sent_at, m.receive_count,
            m.first_received_at
     FROM messages m JOIN queues q ON q.name = m.queue
     WHERE m.queue = +?1 AND m.visible_at <= ?2 AND m.sent_at + q.retention_ms > ?2
       AND m.seq > ?3
     ORDER BY m.seq LIMIT +?4";

fn declare(tx: &Tx<'_>, queues: &[QueueConfig]) -> StoreResult<()> {
    tx.queue_configs.clear();
    for q in queues {
        tx.execute(
                "INSERT INTO queues (name, visibility_timeout_ms, retention_ms, delay_ms, max_message_bytes,
                                     dedup_window_ms, max_receive_count, dead_letter_queue)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (name) DO UPDATE SET
                    visibility_timeout_ms = excluded.visibility_timeout_ms,
                    retention_ms = excluded.retention_ms,
                    delay_ms = excluded.delay_ms,
                    max_message_bytes = excluded.max_message_bytes,
                    dedup_window_ms = excluded.dedup_window_ms,
                    max_receive_count = excluded.max_receive_count,
                    dead_letter_queue = excluded.dead_letter_queue",
                params![
                    q.name,
                    q.visibility_timeout_ms as i64,
                    q.retention_ms as i64,
                    q.delay_ms as i64,
                    q.max_message_bytes as i64,
                    q.dedup_window_ms as i64,
                    q.max_receive_count.map(i64::from),
                    q.dead_letter_queue,
                ],
            )
            .map_err(backend)?;
    }
    Ok(())
}

/// Sends inside the caller's transaction (a schedule tick shares it).
pub(crate) fn send(
    tx: &Tx<'_>,
    queue: &str,
    messages: Vec<SendMessage>,
) -> StoreResult<Vec<SendReceipt>> {
    let config = load_queue(tx, queue)?;
    for message in &messages {
        nimbus_store::queue::check_message(&config, message)?;
    }
    let mut receipts = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(dedup_id) = &message.dedup_id {
            let earlier: Option<String> = tx.query_row(
                    "SELECT message_id FROM dedup WHERE queue = ?1 AND dedup_id = ?2 AND expires_at > ?3",
                    params![queue, dedup_id, tx.now as i64],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            if let Some(message_id) = earlier {
                receipts.push(SendReceipt {
                    message_id,
                    deduplicated: true,
                });
                continue;
            }
        }
        let message_id = new_message_id();
        let delay = message.delay_ms.unwrap_or(config.delay_ms);
        tx.execute(
            "INSERT INTO messages (message_id, queue, body, attributes, sent_at, visible_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                message_id,
                queue,
                message.body,
                encode_attributes(&message.attributes),
                tx.now as i64,
                later(tx.now, delay)
            ],
        )
        .map_err(backend)?;
        if let Some(dedup_id) = &message.dedup_id {
            tx.execute(
                    "INSERT OR REPLACE INTO dedup (queue, dedup_id, message_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![queue, dedup_id, message_id, later(tx.now, config.dedup_window_ms)],
                )
                .map_err(backend)?;
        }
        receipts.push(SendReceipt {
            message_id,
            deduplicated: false,
        });
    }
    tx.signal(queue);
    Ok(receipts)
}

fn receive(
    tx: &Tx<'_>,
    queue: &str,
    max: u32,
    visibility_ms: Option<u64>,
) -> StoreResult<Vec<ReceivedMessage>> {
    let config = load_queue(tx, queue)?;
    let lease_ms = visibility_ms.unwrap_or(config.visibility_timeout_ms);
    let dead_letter = match (&config.max_receive_count, &config.dead_letter_queue) {
        (Some(count), Some(dlq)) => Some((*count, dlq.as_str())),
        _ => None,
    };
    let mut out = Vec::new();
    let mut after_seq = 0i64;
    while (out.len() as u32) < max {
        let want = (max - out.len() as u32) as i64;
        let mut select = tx.conn.prepare_cached(RECEIVE).map_err(backend)?;
        let candidates = select
            .query_map(params![queue, tx.now as i64, after_seq, want], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, i64>(5)? as u32,
                    row.get::<_, Option<i64>>(6)?,
                ))
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        if candidates.is_empty() {
            break;
        }
        for (seq, message_id, body, attributes, sent_at, receive_count, first_received_at) in
            candidates
        {
            after_seq = seq;
            if let Some((max_receives, dlq)) = dead_letter
                && receive_count >= max_receives
            {
                // Moved, not delivered, in the same transaction as this receive.
                tx.execute(
                        "UPDATE messages SET queue = ?1, source_queue = ?2, visible_at = ?3, receipt = NULL
                         WHERE seq = ?4",
                        params![dlq, queue, tx.now as i64, seq],
                    )
                    .map_err(backend)?;
                tx.dead_lettered.borrow_mut().push(queue.to_owned());
                tx.signal(dlq);
                continue;
            }
            let receipt_handle = new_receipt(seq);
            tx.execute(
                    "UPDATE messages SET receipt = ?1, receive_count = receive_count + 1, visible_at = ?2,
                                         first_received_at = COALESCE(first_received_at, ?4)
                     WHERE seq = ?3",
                    params![receipt_handle, later(tx.now, lease_ms), seq, tx.now as i64],
                )
                .map_err(backend)?;
            out.push(ReceivedMessage {
                message_id,
                body,
                attributes: decode_attributes(&attributes),
                receipt_handle,
                receive_count: receive_count + 1,
                sent_at: sent_at as u64,
                first_received_at: first_received_at.map_or(tx.now, |t| t as u64),
            });
        }
    }
    Ok(out)
}

/// Runs `sql` (parameters: queue, receipt, the seq the receipt names, then
/// `extra`) against the message holding `receipt`; no such message means
/// the handle is stale.
fn with_receipt(
    tx: &Tx<'_>,
    queue: &str,
    sql: &str,
    receipt: &str,
    extra: &[&dyn rusqlite::ToSql],
) -> StoreResult<()> {
    load_queue(tx, queue)?;
    let Some(seq) = receipt_seq(receipt) else {
        return Err(StoreError::StaleReceipt);
    };
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&queue, &receipt, &seq];
    values.extend_from_slice(extra);
    let changed = tx.execute(sql, values.as_slice()).map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::StaleReceipt);
    }
    Ok(())
}

fn stats(tx: &Tx<'_>, queue: &str) -> StoreResult<QueueStats> {
    load_queue(tx, queue)?;
    tx.query_row(
        &format!(
            "SELECT
                    COALESCE(SUM(m.visible_at <= ?2), 0),
                    COALESCE(SUM(m.visible_at > ?2 AND m.receipt IS NOT NULL), 0),
                    COALESCE(SUM(m.visible_at > ?2 AND m.receipt IS NULL), 0),
                    MIN(m.sent_at)
                 FROM messages m JOIN queues q ON q.name = m.queue
                 WHERE m.queue = ?1 AND {LIVE}"
        ),
        params![queue, tx.now as i64],
        |row| {
            Ok(QueueStats {
                visible: row.get::<_, i64>(0)? as u64,
                in_flight: row.get::<_, i64>(1)? as u64,
                delayed: row.get::<_, i64>(2)? as u64,
                oldest_age_ms: row
                    .get::<_, Option<i64>>(3)?
                    .map(|sent| tx.now.saturating_sub(sent as u64)),
            })
        },
    )
    .map_err(backend)
}

fn peek(
    tx: &Tx<'_>,
    queue: &str,
    limit: u32,
    after_id: Option<&str>,
) -> StoreResult<Vec<StoredMessage>> {
    load_queue(tx, queue)?;
    let after_seq = match after_id {
        None => 0,
        Some(id) => tx
            .query_row(
                "SELECT seq FROM messages WHERE message_id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::MessageNotFound(id.to_owned()))?,
    };
    let mut select = tx
        .conn
        .prepare_cached(
            "SELECT message_id, body, attributes, sent_at, receive_count, last_error, source_queue
             FROM messages WHERE queue = ?1 AND seq > ?2 ORDER BY seq LIMIT +?3",
        )
        .map_err(backend)?;
    let rows = select
        .query_map(params![queue, after_seq, i64::from(limit)], |row| {
            Ok(StoredMessage {
                message_id: row.get(0)?,
                body: row.get(1)?,
                attributes: decode_attributes(&row.get::<_, String>(2)?),
                sent_at: row.get::<_, i64>(3)? as u64,
                receive_count: row.get::<_, i64>(4)? as u32,
                last_error: row.get(5)?,
                source_queue: row.get(6)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>();
    rows.map_err(backend)
}

fn redrive(tx: &Tx<'_>, from: &str, to: Option<&str>, limit: u32) -> StoreResult<u64> {
    load_queue(tx, from)?;
    if let Some(to) = to {
        load_queue(tx, to)?;
    }
    // With no target, each message goes back to its source queue, if that
    // queue still exists.
    let mut update = tx
        .conn
        .prepare_cached(
            "UPDATE messages SET queue = COALESCE(?2, source_queue), visible_at = ?3, receive_count = 0,
                                 first_received_at = NULL, receipt = NULL, source_queue = NULL
             WHERE seq IN (
                SELECT seq FROM messages
                WHERE queue = ?1 AND (?2 IS NOT NULL OR source_queue IN (SELECT name FROM queues))
                ORDER BY seq LIMIT +?4)
             RETURNING queue",
        )
        .map_err(backend)?;
    let targets = update
        .query_map(params![from, to, tx.now as i64, i64::from(limit)], |row| {
            row.get::<_, String>(0)
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    for target in &targets {
        tx.signal(target);
    }
    Ok(targets.len() as u64)
}

fn queues(tx: &Tx<'_>) -> StoreResult<Vec<QueueConfig>> {
    let names: Vec<String> = tx
        .conn
        .prepare_cached("SELECT name FROM queues ORDER BY name")
        .map_err(backend)?
        .query_map([], |row| row.get(0))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    names.iter().map(|name| load_queue(tx, name)).collect()
}

fn delete_queue(tx: &Tx<'_>, queue: &str) -> StoreResult<u64> {
    load_queue(tx, queue)?;
    tx.queue_configs.clear();
    let source: Option<String> = tx
        .query_row(
            "SELECT name FROM queues WHERE dead_letter_queue = ?1 AND name <> ?1
             ORDER BY name LIMIT 1",
            params![queue],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    if let Some(source_queue) = source {
        return Err(StoreError::DeadLetterQueueInUse {
            queue: queue.to_owned(),
            source_queue,
        });
    }
    let messages = tx
        .execute("DELETE FROM messages WHERE queue = ?1", params![queue])
        .map_err(backend)?;
    tx.execute("DELETE FROM dedup WHERE queue = ?1", params![queue])
        .map_err(backend)?;
    tx.execute("DELETE FROM queues WHERE name = ?1", params![queue])
        .map_err(backend)?;
    Ok(messages as u64)
}

fn expire(tx: &Tx<'_>) -> StoreResult<u64> {
    let now = tx.now as i64;
    let removed = tx
        .execute(
            "DELETE FROM messages WHERE seq IN (
                SELECT m.seq FROM messages m JOIN queues q ON q.name = m.queue
                WHERE m.sent_at + q.retention_ms <= ?1)",
            params![now],
        )
        .map_err(backend)?;
    tx.execute("DELETE FROM dedup WHERE expires_at <= ?1", params![now])
        .map_err(backend)?;
    Ok(removed as u64)
}

#[async_trait::async_trait]
impl QueueStore for SqliteStore {
    async fn declare_queues(&self, queues: &[QueueConfig]) -> StoreResult<()> {
        let queues = queues.to_vec();
        self.writer.run(move |tx| declare(tx, &queues)).await
    }

    async fn send(&self, queue: &str, messages: Vec<SendMessage>) -> StoreResult<Vec<SendReceipt>> {
        let queue = queue.to_owned();
        // One message without a dedup id is one INSERT, after every check
        // that can fail: it needs no savepoint.
        if let [message] = messages.as_slice()
            && message.dedup_id.is_none()
        {
            return self
                .writer
                .run_without_savepoint(move |tx| send(tx, &queue, messages))
                .await;
        }
        self.writer.run(move |tx| send(tx, &queue, messages)).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility_timeout_ms: Option<u64>,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let queue = queue.to_owned();
        let work = move |tx: &Tx<'_>| receive(tx, &queue, max, visibility_timeout_ms);
        if max == 1 {
            // One UPDATE leases the message. (One past its receive limit is
            // moved to the dead-letter queue by an UPDATE of its own and the
            // next one looked for: should a later statement then fail, the
            // writer rolls the whole batch back.)
            self.writer.run_without_savepoint(work).await
        } else {
            self.writer.run(work).await
        }
    }

    async fn delete(&self, queue: &str, receipt_handle: &str) -> StoreResult<()> {
        let (queue, receipt) = (queue.to_owned(), receipt_handle.to_owned());
        // One DELETE, after every check that can fail.
        self.writer
            .run_without_savepoint(move |tx| {
                with_receipt(
                    tx,
                    &queue,
                    "DELETE FROM messages WHERE seq = ?3 AND queue = ?1 AND receipt = ?2",
                    &receipt,
                    &[],
                )
            })
            .await
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout_ms: u64,
    ) -> StoreResult<()> {
        let (queue, receipt) = (queue.to_owned(), receipt_handle.to_owned());
        self.writer
            .run(move |tx| {
                let visible_at = later(tx.now, timeout_ms);
                with_receipt(
                    tx,
                    &queue,
                    "UPDATE messages SET visible_at = ?4 WHERE seq = ?3 AND queue = ?1 AND receipt = ?2",
                    &receipt,
                    &[&visible_at],
                )
            })
            .await
    }

    async fn nack(
        &self,
        queue: &str,
        receipt_handle: &str,
        options: NackOptions,
    ) -> StoreResult<()> {
        let (queue, receipt) = (queue.to_owned(), receipt_handle.to_owned());
        self.writer
            .run(move |tx| {
                let visible_at = later(tx.now, options.visible_after_ms);
                with_receipt(
                    tx,
                    &queue,
                    "UPDATE messages SET visible_at = ?4, last_error = COALESCE(?5, last_error), receipt = NULL
                     WHERE seq = ?3 AND queue = ?1 AND receipt = ?2",
                    &receipt,
                    &[&visible_at, &options.error],
                )
            })
            .await
    }

    async fn purge(&self, queue: &str) -> StoreResult<u64> {
        let queue = queue.to_owned();
        self.writer
            .run(move |tx| {
                load_queue(tx, &queue)?;
                let n = tx
                    .execute("DELETE FROM messages WHERE queue = ?1", params![queue])
                    .map_err(backend)?;
                Ok(n as u64)
            })
            .await
    }

    async fn stats(&self, queue: &str) -> StoreResult<QueueStats> {
        let queue = queue.to_owned();
        self.writer.run(move |tx| stats(tx, &queue)).await
    }

    async fn all_stats(&self) -> StoreResult<Vec<(QueueConfig, QueueStats)>> {
        // One writer transaction: no commit lands between two queues' counts.
        self.writer
            .run(|tx| {
                queues(tx)?
                    .into_iter()
                    .map(|config| {
                        let stats = stats(tx, &config.name)?;
                        Ok((config, stats))
                    })
                    .collect()
            })
            .await
    }

    async fn peek(
        &self,
        queue: &str,
        limit: u32,
        after_id: Option<&str>,
    ) -> StoreResult<Vec<StoredMessage>> {
        let (queue, after) = (queue.to_owned(), after_id.map(str::to_owned));
        self.writer
            .run(move |tx| peek(tx, &queue, limit, after.as_deref()))
            .await
    }

    async fn delete_by_id(&self, queue: &str, message_id: &str) -> StoreResult<()> {
        let (queue, id) = (queue.to_owned(), message_id.to_owned());
        self.writer
            .run(move |tx| {
                load_queue(tx, &queue)?;
                let n = tx
                    .execute(
                        "DELETE FROM messages WHERE queue = ?1 AND message_id = ?2",
                        params![queue, id],
                    )
                    .map_err(backend)?;
                if n == 0 {
                    return Err(StoreError::MessageNotFound(id));
                }
                Ok(())
            })
            .await
    }

    async fn redrive(&self, from: &str, to: Option<&str>, limit: u32) -> StoreResult<u64> {
        let (from, to) = (from.to_owned(), to.map(str::to_owned));
        self.writer
            .run(move |tx| redrive(tx, &from, to.as_deref(), limit))
            .await
    }

    async fn queues(&self) -> StoreResult<Vec<QueueConfig>> {
        self.writer.run(queues).await
    }

    async fn expire(&self) -> StoreResult<u64> {
        self.writer.run(expire).await
    }

    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        let queue = queue.to_owned();
        self.writer.run(move |tx| delete_queue(tx, &queue)).await
    }
}
