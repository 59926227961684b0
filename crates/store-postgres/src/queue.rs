//! `QueueStore` on PostgreSQL. Receives lease rows with `FOR UPDATE SKIP
//! LOCKED`, so concurrent receivers (in any process) never lease one message
//! twice; delete, nack and visibility changes match the current receipt;
//! deduplication ids are a unique key claimed with `ON CONFLICT`.
//!
//! The hot operations go through `batch`'s group commit (a plain send, a
//! receive from a queue without a dead-letter queue, delete) or are one
//! statement each (nack, visibility changes). They read the queue's settings
//! from a cache that this process's declarations clear and that forgets
//! everything after [`CONFIG_TTL`], so a declaration by another process takes
//! effect here within that time.

use crate::batch::{NewMessage, Receive};
use crate::{PgStore, Tx, in_tx, int8, later};
use nimbus_store::queue::{
    NackOptions, QueueConfig, QueueStats, QueueStore, ReceivedMessage, SendMessage, SendReceipt,
    StoredMessage,
};
use nimbus_store::{StoreError, StoreResult};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::Row;

/// How long a queue's settings are trusted without reading them again.
const CONFIG_TTL: Duration = Duration::from_secs(1);

/// Queue settings read recently, by name.
#[derive(Default)]
pub(crate) struct ConfigCache(Mutex<HashMap<String, (QueueConfig, Instant)>>);

impl ConfigCache {
    fn get(&self, name: &str) -> Option<QueueConfig> {
        let cache = self.0.lock().unwrap();
        let (config, read) = cache.get(name)?;
        (read.elapsed() < CONFIG_TTL).then(|| config.clone())
    }

    fn put(&self, config: QueueConfig) {
        let mut cache = self.0.lock().unwrap();
        cache.insert(config.name.clone(), (config, Instant::now()));
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl PgStore {
    /// The queue's settings, from the cache or the database.
    async fn queue_config(&self, name: &str) -> StoreResult<QueueConfig> {
        if let Some(config) = self.queue_configs.get(name) {
            return Ok(config);
        }
        let rows = self
            .db
            .statement(
                &format!("SELECT {CONFIG_COLUMNS} FROM queues WHERE name = $1"),
                &[&name],
                None,
            )
            .await?;
        let config = rows
            .first()
            .map(config_from_row)
            .ok_or_else(|| StoreError::QueueNotFound(name.to_owned()))?;
        self.queue_configs.put(config.clone());
        Ok(config)
    }

    /// A single-statement update of the message holding `receipt` (`$1`
    /// queue, `$2` receipt, `$3` the seq the receipt names, then `extra`);
    /// no such message means the handle is stale (or the queue unknown).
    async fn by_receipt(
        &self,
        queue: &str,
        sql: &str,
        receipt: &str,
        extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<()> {
        let rows = match receipt_seq(receipt) {
            Some(seq) => {
                let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    vec![&queue, &receipt, &seq];
                params.extend_from_slice(extra);
                self.db.statement(sql, &params, None).await?
            }
            None => Vec::new(),
        };
        if rows.is_empty() {
            self.queue_config(queue).await?;
            return Err(StoreError::StaleReceipt);
        }
        Ok(())
    }
}

const CONFIG_COLUMNS: &str = "name, visibility_timeout_ms, retention_ms, delay_ms, \
     max_message_bytes, dedup_window_ms, max_receive_count, dead_letter_queue";
/// How many columns [`CONFIG_COLUMNS`] names: [`config_from_row`] reads them.
const CONFIG_COLUMN_COUNT: usize = 8;

fn config_from_row(row: &Row) -> QueueConfig {
    QueueConfig {
        name: row.get(0),
        visibility_timeout_ms: row.get::<_, i64>(1) as u64,
        retention_ms: row.get::<_, i64>(2) as u64,
        delay_ms: row.get::<_, i64>(3) as u64,
        max_message_bytes: row.get::<_, i64>(4) as usize,
        dedup_window_ms: row.get::<_, i64>(5) as u64,
        max_receive_count: row.get::<_, Option<i32>>(6).map(|n| n as u32),
        dead_letter_queue: row.get(7),
    }
}

pub(crate) async fn load_queue(tx: &Tx<'_>, name: &str) -> StoreResult<QueueConfig> {
    tx.query_opt(
        &format!("SELECT {CONFIG_COLUMNS} FROM queues WHERE name = $1"),
        &[&name],
    )
    .await?
    .map(|row| config_from_row(&row))
    .ok_or_else(|| StoreError::QueueNotFound(name.to_owned()))
}

fn encode_attributes(attributes: &BTreeMap<String, String>) -> String {
    serde_json::to_string(attributes).unwrap_or_else(|_| "{}".to_owned())
}

fn decode_attributes(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A message id: time-ordered (UUIDv7), so the unique index on ids grows
/// at its right edge like the seq index, instead of writing a random page
/// (and, after each checkpoint, a full page image) per message.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The oldest `sent_at` still within `config`'s retention at `now`.
fn live_since(tx: &Tx<'_>, config: &QueueConfig) -> i64 {
    tx.now.saturating_sub(int8(config.retention_ms))
}

async fn declare(tx: &Tx<'_>, queues: &[QueueConfig]) -> StoreResult<()> {
    for q in queues {
        let max_receive_count = q.max_receive_count.map(|n| n.min(i32::MAX as u32) as i32);
        tx.execute(
            "INSERT INTO queues (name, visibility_timeout_ms, retention_ms, delay_ms, max_message_bytes,
                                 dedup_window_ms, max_receive_count, dead_letter_queue)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET
                visibility_timeout_ms = excluded.visibility_timeout_ms,
                retention_ms = excluded.retention_ms,
                delay_ms = excluded.delay_ms,
                max_message_bytes = excluded.max_message_bytes,
                dedup_window_ms = excluded.dedup_window_ms,
                max_receive_count = excluded.max_receive_count,
                dead_letter_queue = excluded.dead_letter_queue",
            &[
                &q.name,
                &int8(q.visibility_timeout_ms),
                &int8(q.retention_ms),
                &int8(q.delay_ms),
                &(q.max_message_bytes as i64),
                &int8(q.dedup_window_ms),
                &max_receive_count,
                &q.dead_letter_queue,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Sends inside the caller's transaction (object events and schedule ticks
/// share it).
pub(crate) async fn send(
    tx: &Tx<'_>,
    queue: &str,
    messages: Vec<SendMessage>,
) -> StoreResult<Vec<SendReceipt>> {
    let config = load_queue(tx, queue).await?;
    for message in &messages {
        nimbus_store::queue::check_message(&config, message)?;
    }
    let mut receipts = Vec::with_capacity(messages.len());
    for message in messages {
        let message_id = new_id();
        if let Some(dedup_id) = &message.dedup_id {
            // Claim the id, or take over an expired claim; a live claim (a
            // concurrent sender's too, once it commits) wins.
            let claimed = tx
                .query_opt(
                    "INSERT INTO dedup (queue, dedup_id, message_id, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (queue, dedup_id) DO UPDATE
                        SET message_id = excluded.message_id, expires_at = excluded.expires_at
                        WHERE dedup.expires_at <= $5
                     RETURNING message_id",
                    &[
                        &queue,
                        dedup_id,
                        &message_id,
                        &later(tx.now, config.dedup_window_ms),
                        &tx.now,
                    ],
                )
                .await?;
            if claimed.is_none() {
                let earlier = tx
                    .query_one(
                        "SELECT message_id FROM dedup WHERE queue = $1 AND dedup_id = $2",
                        &[&queue, dedup_id],
                    )
                    .await?;
                receipts.push(SendReceipt {
                    message_id: earlier.get(0),
                    deduplicated: true,
                });
                continue;
            }
        }
        let delay = message.delay_ms.unwrap_or(config.delay_ms);
        tx.execute(
            "INSERT INTO messages (message_id, queue, body, attributes, sent_at, visible_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &message_id,
                &queue,
                &message.body,
                &encode_attributes(&message.attributes),
                &tx.now,
                &later(tx.now, delay),
            ],
        )
        .await?;
        receipts.push(SendReceipt {
            message_id,
            deduplicated: false,
        });
    }
    tx.signal(queue);
    Ok(receipts)
}

async fn receive(
    tx: &Tx<'_>,
    queue: &str,
    max: u32,
    visibility_ms: Option<u64>,
) -> StoreResult<Vec<ReceivedMessage>> {
    let config = load_queue(tx, queue).await?;
    let lease_until = later(
        tx.now,
        visibility_ms.unwrap_or(config.visibility_timeout_ms),
    );
    let since = live_since(tx, &config);
    let max_receives = match (&config.max_receive_count, &config.dead_letter_queue) {
        (Some(count), Some(_)) => Some(i32::try_from(*count).unwrap_or(i32::MAX)),
        _ => None,
    };
    let mut out: Vec<ReceivedMessage> = Vec::new();
    loop {
        let want = i64::from(max) - out.len() as i64;
        if want <= 0 {
            break;
        }
        // Messages out of receives move to the dead-letter queue in this
        // transaction, instead of being delivered.
        if let (Some(count), Some(dlq)) = (max_receives, &config.dead_letter_queue) {
            let moved = tx
                .execute(
                    "WITH dead AS (
                        SELECT seq FROM messages
                        WHERE queue = $1 AND visible_at <= $2 AND sent_at > $3 AND receive_count >= $4
                        ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED)
                     UPDATE messages m SET queue = $6, source_queue = $1, visible_at = $2, receipt = NULL
                     FROM dead WHERE m.seq = dead.seq",
                    &[&queue, &tx.now, &since, &count, &want, dlq],
                )
                .await?;
            if moved > 0 {
                tx.dead_lettered(queue, moved as usize);
                tx.signal(dlq);
            }
        }
        let rows = tx
            .query(
                &format!(
                    "WITH picked AS (
                    SELECT seq FROM messages
                    WHERE queue = $1 AND visible_at <= $2 AND sent_at > $3
                      AND ($4::int4 IS NULL OR receive_count < $4)
                    ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED)
                 UPDATE messages m SET receipt = {NEW_RECEIPT},
                        receive_count = m.receive_count + 1, visible_at = $6,
                        first_received_at = COALESCE(m.first_received_at, $2)
                 FROM picked WHERE m.seq = picked.seq
                 RETURNING {LEASED}"
                ),
                &[&queue, &tx.now, &since, &max_receives, &want, &lease_until],
            )
            .await?;
        if rows.is_empty() {
            // Nothing deliverable now; if dead letters were moved, another
            // round could find more of them, but not a deliverable message.
            break;
        }
        let batch = leased(&rows);
        let got = batch.len() as i64;
        out.extend(batch);
        if got < want {
            break;
        }
    }
    Ok(out)
}

/// A new receipt handle for the message `seq` (in SQL): the seq, so the
/// message is found by its key, and a random part, so only this lease's
/// holder knows it.
pub(crate) const NEW_RECEIPT: &str = "m.seq::text || '.' || gen_random_uuid()::text";

/// The seq a receipt handle names, if it is one of ours.
fn receipt_seq(receipt: &str) -> Option<i64> {
    receipt.split_once('.')?.0.parse().ok()
}

/// What a lease returns, for [`leased`].
pub(crate) const LEASED: &str = "m.seq, m.message_id, m.body, m.attributes, m.sent_at, m.receive_count, m.receipt, m.first_received_at";

/// Leased messages from `RETURNING` [`LEASED`], oldest first.
pub(crate) fn leased(rows: &[Row]) -> Vec<ReceivedMessage> {
    let mut batch: Vec<(i64, ReceivedMessage)> = rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                ReceivedMessage {
                    message_id: row.get(1),
                    body: row.get(2),
                    attributes: decode_attributes(row.get(3)),
                    sent_at: row.get::<_, i64>(4) as u64,
                    receive_count: row.get::<_, i32>(5) as u32,
                    receipt_handle: row.get(6),
                    first_received_at: row.get::<_, i64>(7) as u64,
                },
            )
        })
        .collect();
    batch.sort_by_key(|(seq, _)| *seq);
    batch.into_iter().map(|(_, m)| m).collect()
}

async fn stats(tx: &Tx<'_>, queue: &str) -> StoreResult<QueueStats> {
    let config = load_queue(tx, queue).await?;
    let row = tx
        .query_one(
            "SELECT
                count(*) FILTER (WHERE visible_at <= $2),
                count(*) FILTER (WHERE visible_at > $2 AND receipt IS NOT NULL),
                count(*) FILTER (WHERE visible_at > $2 AND receipt IS NULL),
                min(sent_at)
             FROM messages WHERE queue = $1 AND sent_at > $3",
            &[&queue, &tx.now, &live_since(tx, &config)],
        )
        .await?;
    Ok(QueueStats {
        visible: row.get::<_, i64>(0) as u64,
        in_flight: row.get::<_, i64>(1) as u64,
        delayed: row.get::<_, i64>(2) as u64,
        oldest_age_ms: row
            .get::<_, Option<i64>>(3)
            .map(|sent| tx.now.saturating_sub(sent).max(0) as u64),
    })
}

/// Every queue's counts from one statement, so from one snapshot (each
/// statement of a READ COMMITTED transaction takes its own).
async fn all_stats(tx: &Tx<'_>) -> StoreResult<Vec<(QueueConfig, QueueStats)>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {CONFIG_COLUMNS},
                    count(m.seq) FILTER (WHERE m.visible_at <= $1),
                    count(m.seq) FILTER (WHERE m.visible_at > $1 AND m.receipt IS NOT NULL),
                    count(m.seq) FILTER (WHERE m.visible_at > $1 AND m.receipt IS NULL),
                    min(m.sent_at)
                 FROM queues q
                 LEFT JOIN messages m ON m.queue = q.name AND m.sent_at > $1 - q.retention_ms
                 GROUP BY q.name
                 ORDER BY q.name"
            ),
            &[&tx.now],
        )
        .await?;
    let first = CONFIG_COLUMN_COUNT;
    Ok(rows
        .iter()
        .map(|row| {
            let stats = QueueStats {
                visible: row.get::<_, i64>(first) as u64,
                in_flight: row.get::<_, i64>(first + 1) as u64,
                delayed: row.get::<_, i64>(first + 2) as u64,
                oldest_age_ms: row
                    .get::<_, Option<i64>>(first + 3)
                    .map(|sent| tx.now.saturating_sub(sent).max(0) as u64),
            };
            (config_from_row(row), stats)
        })
        .collect())
}

async fn peek(
    tx: &Tx<'_>,
    queue: &str,
    limit: u32,
    after_id: Option<&str>,
) -> StoreResult<Vec<StoredMessage>> {
    load_queue(tx, queue).await?;
    let after_seq: i64 = match after_id {
        None => 0,
        Some(id) => tx
            .query_opt("SELECT seq FROM messages WHERE message_id = $1", &[&id])
            .await?
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::MessageNotFound(id.to_owned()))?,
    };
    let rows = tx
        .query(
            "SELECT message_id, body, attributes, sent_at, receive_count, last_error, source_queue
             FROM messages WHERE queue = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&queue, &after_seq, &i64::from(limit)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| StoredMessage {
            message_id: row.get(0),
            body: row.get(1),
            attributes: decode_attributes(row.get(2)),
            sent_at: row.get::<_, i64>(3) as u64,
            receive_count: row.get::<_, i32>(4) as u32,
            last_error: row.get(5),
            source_queue: row.get(6),
        })
        .collect())
}

async fn redrive(tx: &Tx<'_>, from: &str, to: Option<&str>, limit: u32) -> StoreResult<u64> {
    load_queue(tx, from).await?;
    if let Some(to) = to {
        load_queue(tx, to).await?;
    }
    // With no target, each message goes back to its source queue, if that
    // queue still exists. Locked rows (being received) are left for later.
    let targets = tx.query(
        "WITH moving AS (
            SELECT seq FROM messages
            WHERE queue = $1 AND ($2::text IS NOT NULL OR source_queue IN (SELECT name FROM queues))
            ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
         UPDATE messages m SET queue = COALESCE($2, m.source_queue), visible_at = $3, receive_count = 0,
                first_received_at = NULL, receipt = NULL, source_queue = NULL
         FROM moving WHERE m.seq = moving.seq
         RETURNING m.queue",
        &[&from, &to, &tx.now, &i64::from(limit)],
    )
    .await?;
    for target in &targets {
        tx.signal(target.get(0));
    }
    Ok(targets.len() as u64)
}

async fn queues(tx: &Tx<'_>) -> StoreResult<Vec<QueueConfig>> {
    let rows = tx
        .query(
            &format!("SELECT {CONFIG_COLUMNS} FROM queues ORDER BY name"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(config_from_row).collect())
}

/// Deletes the queue with its messages. A plain send does not lock the
/// queue's row (it reads the settings from a cache), so a send through
/// another process racing the deletion within [`CONFIG_TTL`] could still
/// store a message under the name; only what the served version does not
/// declare is deleted, so such a send is an operator's own through `/v1`.
async fn delete_queue(tx: &Tx<'_>, queue: &str) -> StoreResult<u64> {
    // Locked first: a concurrent deletion of the same queue waits, then
    // finds it gone.
    tx.query_opt("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE", &[&queue])
        .await?
        .ok_or_else(|| StoreError::QueueNotFound(queue.to_owned()))?;
    let source = tx
        .query_opt(
            "SELECT name FROM queues WHERE dead_letter_queue = $1 AND name <> $1
             ORDER BY name LIMIT 1",
            &[&queue],
        )
        .await?;
    if let Some(row) = source {
        return Err(StoreError::DeadLetterQueueInUse {
            queue: queue.to_owned(),
            source_queue: row.get(0),
        });
    }
    let messages = tx
        .execute("DELETE FROM messages WHERE queue = $1", &[&queue])
        .await?;
    tx.execute("DELETE FROM dedup WHERE queue = $1", &[&queue])
        .await?;
    tx.execute("DELETE FROM queues WHERE name = $1", &[&queue])
        .await?;
    Ok(messages)
}

async fn expire(tx: &Tx<'_>) -> StoreResult<u64> {
    let removed = tx
        .execute(
            "DELETE FROM messages m USING queues q
             WHERE q.name = m.queue AND m.sent_at <= $1 - q.retention_ms",
            &[&tx.now],
        )
        .await?;
    tx.execute("DELETE FROM dedup WHERE expires_at <= $1", &[&tx.now])
        .await?;
    Ok(removed)
}

#[async_trait::async_trait]
impl QueueStore for PgStore {
    async fn declare_queues(&self, queues: &[QueueConfig]) -> StoreResult<()> {
        let declared = in_tx!(self, |tx| declare(tx, queues).await);
        self.queue_configs.clear();
        declared
    }

    async fn send(&self, queue: &str, messages: Vec<SendMessage>) -> StoreResult<Vec<SendReceipt>> {
        if messages.iter().any(|m| m.dedup_id.is_some()) {
            return in_tx!(self, |tx| send(tx, queue, messages.clone()).await);
        }
        let config = self.queue_config(queue).await?;
        for message in &messages {
            nimbus_store::queue::check_message(&config, message)?;
        }
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let new: Vec<NewMessage> = messages
            .into_iter()
            .map(|message| NewMessage {
                id: new_id(),
                attributes: encode_attributes(&message.attributes),
                delay_ms: int8(message.delay_ms.unwrap_or(config.delay_ms)),
                body: message.body,
            })
            .collect();
        let receipts = new
            .iter()
            .map(|m| SendReceipt {
                message_id: m.id.clone(),
                deduplicated: false,
            })
            .collect();
        self.batcher.send(queue, new).await?;
        Ok(receipts)
    }

    async fn receive(
        &self,
        queue: &str,
        max: u32,
        visibility_timeout_ms: Option<u64>,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let config = self.queue_config(queue).await?;
        if config.max_receive_count.is_some() && config.dead_letter_queue.is_some() {
            // Dead-letter moves and leases in one transaction.
            return in_tx!(self, |tx| receive(tx, queue, max, visibility_timeout_ms)
                .await);
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        self.batcher
            .receive(Receive {
                queue: queue.to_owned(),
                lease_ms: int8(visibility_timeout_ms.unwrap_or(config.visibility_timeout_ms)),
                retention_ms: int8(config.retention_ms),
                max,
            })
            .await
    }

    async fn delete(&self, queue: &str, receipt_handle: &str) -> StoreResult<()> {
        let deleted = match receipt_seq(receipt_handle) {
            Some(seq) => self.batcher.delete(queue, seq, receipt_handle).await?,
            None => false,
        };
        if !deleted {
            self.queue_config(queue).await?;
            return Err(StoreError::StaleReceipt);
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout_ms: u64,
    ) -> StoreResult<()> {
        self.by_receipt(
            queue,
            "UPDATE messages SET visible_at = nimbus_later(nimbus_now_ms($5), $4)
             WHERE seq = $3 AND queue = $1 AND receipt = $2 RETURNING seq",
            receipt_handle,
            &[&int8(timeout_ms), &self.db.test_now()],
        )
        .await
    }

    async fn nack(
        &self,
        queue: &str,
        receipt_handle: &str,
        options: NackOptions,
    ) -> StoreResult<()> {
        self.by_receipt(
            queue,
            "UPDATE messages SET visible_at = nimbus_later(nimbus_now_ms($6), $4),
                    last_error = COALESCE($5, last_error), receipt = NULL
             WHERE seq = $3 AND queue = $1 AND receipt = $2 RETURNING seq",
            receipt_handle,
            &[
                &int8(options.visible_after_ms),
                &options.error,
                &self.db.test_now(),
            ],
        )
        .await
    }

    async fn purge(&self, queue: &str) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            load_queue(tx, queue).await?;
            tx.execute("DELETE FROM messages WHERE queue = $1", &[&queue])
                .await
        })
    }

    async fn stats(&self, queue: &str) -> StoreResult<QueueStats> {
        in_tx!(self, |tx| stats(tx, queue).await)
    }

    async fn all_stats(&self) -> StoreResult<Vec<(QueueConfig, QueueStats)>> {
        in_tx!(self, |tx| all_stats(tx).await)
    }

    async fn peek(
        &self,
        queue: &str,
        limit: u32,
        after_id: Option<&str>,
    ) -> StoreResult<Vec<StoredMessage>> {
        in_tx!(self, |tx| peek(tx, queue, limit, after_id).await)
    }

    async fn delete_by_id(&self, queue: &str, message_id: &str) -> StoreResult<()> {
        in_tx!(self, |tx| {
            load_queue(tx, queue).await?;
            let n = tx
                .execute(
                    "DELETE FROM messages WHERE queue = $1 AND message_id = $2",
                    &[&queue, &message_id],
                )
                .await?;
            if n == 0 {
                return Err(StoreError::MessageNotFound(message_id.to_owned()));
            }
            Ok(())
        })
    }

    async fn redrive(&self, from: &str, to: Option<&str>, limit: u32) -> StoreResult<u64> {
        in_tx!(self, |tx| redrive(tx, from, to, limit).await)
    }

    async fn queues(&self) -> StoreResult<Vec<QueueConfig>> {
        in_tx!(self, |tx| queues(tx).await)
    }

    async fn expire(&self) -> StoreResult<u64> {
        in_tx!(self, |tx| expire(tx).await)
    }

    async fn delete_queue(&self, queue: &str) -> StoreResult<u64> {
        let deleted = in_tx!(self, |tx| delete_queue(tx, queue).await);
        // Other processes forget the settings within `CONFIG_TTL`.
        self.queue_configs.clear();
        deleted
    }
}
