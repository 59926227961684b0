//! `TableStore` on PostgreSQL. A write locks its item row (`FOR UPDATE`, or
//! an insert that loses to a concurrent one and looks again), so
//! conditional writes never lose an update. A streamed table's change
//! record takes its sequence number from the table's head row as the last
//! statement of the write's transaction: the head stays locked until the
//! commit, so the next writer of the table numbers its record only after
//! this one is visible. Sequence order is commit order with no gaps, and a
//! reader that has seen `seq` N has seen every record up to N.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::table::{
    ChangeKind, ChangeRecord, ConditionFailed, ItemKey, ItemPage, Lane, PutCondition, SortRange,
    StoredItem, StreamView, TableConfig, TableDeleted, TableStore, key_hash,
    stream_consumer_prefix, stream_signal,
};
use nimbus_store::{StoreError, StoreResult, Timestamp};
use tokio_postgres::Row;

const CONFIG_COLUMNS: &str =
    "name, partition_key, sort_key, stream, stream_retention_ms, max_item_bytes";

fn config_from_row(row: &Row) -> TableConfig {
    TableConfig {
        name: row.get(0),
        partition_key: row.get(1),
        sort_key: row.get(2),
        stream: row.get::<_, Option<&str>>(3).and_then(StreamView::parse),
        stream_retention_ms: row.get::<_, i64>(4) as u64,
        max_item_bytes: row.get::<_, i64>(5) as usize,
    }
}

async fn load_table(tx: &Tx<'_>, name: &str) -> StoreResult<TableConfig> {
    tx.query_opt(
        &format!("SELECT {CONFIG_COLUMNS} FROM doc_tables WHERE name = $1"),
        &[&name],
    )
    .await?
    .map(|row| config_from_row(&row))
    .ok_or_else(|| StoreError::TableNotFound(name.to_owned()))
}

/// The item under the key, locked until the transaction ends.
async fn lock_current(
    tx: &Tx<'_>,
    table: &str,
    pk: &str,
    sk: &str,
) -> StoreResult<Option<(Vec<u8>, u64)>> {
    Ok(tx
        .query_opt(
            "SELECT document, version FROM items WHERE tbl = $1 AND pk = $2 AND sk = $3 FOR UPDATE",
            &[&table, &pk, &sk],
        )
        .await?
        .map(|row| (row.get(0), row.get::<_, i64>(1) as u64)))
}

struct Change<'a> {
    kind: ChangeKind,
    key: &'a ItemKey,
    new: Option<&'a [u8]>,
    old: Option<&'a [u8]>,
    version: u64,
    traceparent: Option<String>,
}

/// Numbers the change from the table's head row and records it; called
/// last in the write's transaction (see the module comment).
async fn record_change(tx: &Tx<'_>, table: &TableConfig, change: Change<'_>) -> StoreResult<()> {
    let Some(view) = table.stream else {
        return Ok(());
    };
    let inserted = tx
        .execute(
            "WITH head AS (
                UPDATE stream_heads SET last_seq = last_seq + 1 WHERE tbl = $1 RETURNING last_seq)
             INSERT INTO stream_records (tbl, seq, kind, pk, sk, key_hash, new_image, old_image, version, at, trace)
             SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM head",
            &[
                &table.name,
                &change.kind.as_str(),
                &change.key.partition,
                &change.key.sort,
                &i64::from(key_hash(&change.key.partition)),
                &change.new.filter(|_| view.keeps_new()),
                &change.old.filter(|_| view.keeps_old()),
                &int8(change.version),
                &tx.now,
                &change.traceparent,
            ],
        )
        .await?;
    if inserted != 1 {
        return Err(StoreError::Backend(format!(
            "table `{}` has no stream head row",
            table.name
        )));
    }
    tx.signal(&stream_signal(&table.name));
    Ok(())
}

async fn put(
    tx: &Tx<'_>,
    table: &str,
    key: &ItemKey,
    document: &[u8],
    condition: PutCondition,
    traceparent: Option<String>,
) -> StoreResult<Result<u64, ConditionFailed>> {
    let config = load_table(tx, table).await?;
    if document.len() > config.max_item_bytes {
        return Err(StoreError::ItemTooLarge {
            size: document.len(),
            limit: config.max_item_bytes,
        });
    }
    let sk = config.stored_sort_key(key)?;
    let (existing, version) = loop {
        let existing = lock_current(tx, table, &key.partition, &sk).await?;
        let current_version = existing.as_ref().map(|(_, v)| *v);
        if !condition.allows(current_version) {
            return Ok(Err(ConditionFailed { current_version }));
        }
        let version = current_version.map_or(1, |v| v + 1);
        if existing.is_some() {
            tx.execute(
                "UPDATE items SET document = $4, version = $5, updated_at = $6
                 WHERE tbl = $1 AND pk = $2 AND sk = $3",
                &[
                    &table,
                    &key.partition,
                    &sk,
                    &document,
                    &int8(version),
                    &tx.now,
                ],
            )
            .await?;
            break (existing, version);
        }
        let inserted = tx
            .execute(
                "INSERT INTO items (tbl, pk, sk, document, version, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &table,
                    &key.partition,
                    &sk,
                    &document,
                    &int8(version),
                    &tx.now,
                ],
            )
            .await?;
        if inserted == 1 {
            break (None, version);
        }
        // A concurrent writer created the item after the lock found none:
        // look again, now at its committed row.
    };
    let change = Change {
        kind: if existing.is_some() {
            ChangeKind::Modify
        } else {
            ChangeKind::Insert
        },
        key,
        new: Some(document),
        old: existing.as_ref().map(|(doc, _)| doc.as_slice()),
        version,
        traceparent,
    };
    record_change(tx, &config, change).await?;
    Ok(Ok(version))
}

async fn delete(
    tx: &Tx<'_>,
    table: &str,
    key: &ItemKey,
    if_version: Option<u64>,
    traceparent: Option<String>,
) -> StoreResult<Result<Option<u64>, ConditionFailed>> {
    let config = load_table(tx, table).await?;
    let sk = config.stored_sort_key(key)?;
    let existing = lock_current(tx, table, &key.partition, &sk).await?;
    let current_version = existing.as_ref().map(|(_, v)| *v);
    if let Some(wanted) = if_version
        && current_version != Some(wanted)
    {
        return Ok(Err(ConditionFailed { current_version }));
    }
    let Some((old, version)) = existing else {
        return Ok(Ok(None));
    };
    tx.execute(
        "DELETE FROM items WHERE tbl = $1 AND pk = $2 AND sk = $3",
        &[&table, &key.partition, &sk],
    )
    .await?;
    let change = Change {
        kind: ChangeKind::Remove,
        key,
        new: None,
        old: Some(&old),
        version,
        traceparent,
    };
    record_change(tx, &config, change).await?;
    Ok(Ok(Some(version)))
}

fn item_from_row(row: &Row, has_sort: bool) -> StoredItem {
    let sk: String = row.get(1);
    StoredItem {
        key: ItemKey {
            partition: row.get(0),
            sort: has_sort.then_some(sk),
        },
        document: row.get(2),
        version: row.get::<_, i64>(3) as u64,
        updated_at: row.get::<_, i64>(4) as Timestamp,
    }
}

/// One page from rows fetched one past the limit (to know whether another
/// page follows).
fn page(config: &TableConfig, rows: &[Row], limit: u32) -> ItemPage {
    let has_sort = config.sort_key.is_some();
    let mut items: Vec<StoredItem> = rows
        .iter()
        .map(|row| item_from_row(row, has_sort))
        .collect();
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = more.then(|| items.last().map(|i| i.key.clone())).flatten();
    ItemPage { items, next }
}

async fn query(
    tx: &Tx<'_>,
    table: &str,
    partition: &str,
    range: &SortRange,
    after: Option<&ItemKey>,
    limit: u32,
) -> StoreResult<ItemPage> {
    let config = load_table(tx, table).await?;
    let after_sk = after.and_then(|k| k.sort.clone());
    let (from, to, prefix) = match range {
        SortRange::All => (None, None, None),
        SortRange::Prefix(p) => (Some(p.clone()), None, Some(p.clone())),
        SortRange::Between { from, to } => (from.clone(), to.clone(), None),
    };
    let rows = tx
        .query(
            "SELECT pk, sk, document, version, updated_at FROM items
             WHERE tbl = $1 AND pk = $2
               AND ($3::text IS NULL OR sk >= $3) AND ($4::text IS NULL OR sk <= $4)
               AND ($5::text IS NULL OR starts_with(sk, $5))
               AND ($6::text IS NULL OR sk > $6)
             ORDER BY sk LIMIT $7",
            &[
                &table,
                &partition,
                &from,
                &to,
                &prefix,
                &after_sk,
                &(i64::from(limit) + 1),
            ],
        )
        .await?;
    Ok(page(&config, &rows, limit))
}

async fn scan(
    tx: &Tx<'_>,
    table: &str,
    after: Option<&ItemKey>,
    limit: u32,
) -> StoreResult<ItemPage> {
    let config = load_table(tx, table).await?;
    let after_pk = after.map(|k| k.partition.clone());
    let after_sk = after.map(|k| k.sort.clone().unwrap_or_default());
    let rows = tx
        .query(
            "SELECT pk, sk, document, version, updated_at FROM items
             WHERE tbl = $1 AND ($2::text IS NULL OR (pk, sk) > ($2, $3::text))
             ORDER BY pk, sk LIMIT $4",
            &[&table, &after_pk, &after_sk, &(i64::from(limit) + 1)],
        )
        .await?;
    Ok(page(&config, &rows, limit))
}

fn change_from_row(row: &Row) -> ChangeRecord {
    let kind = match row.get::<_, &str>(1) {
        "insert" => ChangeKind::Insert,
        "modify" => ChangeKind::Modify,
        _ => ChangeKind::Remove,
    };
    ChangeRecord {
        seq: row.get::<_, i64>(0) as u64,
        kind,
        key: ItemKey {
            partition: row.get(2),
            sort: row.get(3),
        },
        new_image: row.get(4),
        old_image: row.get(5),
        version: row.get::<_, i64>(6) as u64,
        at: row.get::<_, i64>(7) as Timestamp,
        traceparent: row.get(8),
    }
}

async fn read_stream(
    tx: &Tx<'_>,
    table: &str,
    after: u64,
    limit: u32,
    lane: Option<Lane>,
) -> StoreResult<Vec<ChangeRecord>> {
    load_table(tx, table).await?;
    let (lanes, index) = lane.map_or((1, 0), |l| (i64::from(l.lanes.max(1)), i64::from(l.index)));
    let rows = tx
        .query(
            "SELECT seq, kind, pk, sk, new_image, old_image, version, at, trace
             FROM stream_records
             WHERE tbl = $1 AND seq > $2 AND key_hash % $3 = $4
             ORDER BY seq LIMIT $5",
            &[&table, &int8(after), &lanes, &index, &i64::from(limit)],
        )
        .await?;
    Ok(rows.iter().map(change_from_row).collect())
}

async fn latest_seq(tx: &Tx<'_>, table: &str) -> StoreResult<u64> {
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0) FROM stream_records WHERE tbl = $1",
            &[&table],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn declare(tx: &Tx<'_>, tables: &[TableConfig]) -> StoreResult<()> {
    for t in tables {
        tx.execute(
            "INSERT INTO doc_tables (name, partition_key, sort_key, stream, stream_retention_ms, max_item_bytes)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET partition_key = excluded.partition_key,
                 sort_key = excluded.sort_key, stream = excluded.stream,
                 stream_retention_ms = excluded.stream_retention_ms,
                 max_item_bytes = excluded.max_item_bytes",
            &[
                &t.name,
                &t.partition_key,
                &t.sort_key,
                &t.stream.map(StreamView::as_str),
                &int8(t.stream_retention_ms),
                &(t.max_item_bytes as i64),
            ],
        )
        .await?;
        // Every table has a head, so turning a stream on later needs none.
        tx.execute(
            "INSERT INTO stream_heads (tbl, last_seq) VALUES ($1, 0) ON CONFLICT (tbl) DO NOTHING",
            &[&t.name],
        )
        .await?;
    }
    Ok(())
}

/// Deletes the table after locking its settings and its stream head: a
/// streamed write numbers its record from the head as its last statement,
/// so one that committed first is seen here, and one that comes after
/// finds no head and fails rather than leave a record behind. (A write to
/// an unstreamed table reads the settings without a lock, so one racing
/// the deletion could still leave its item; only a table the served
/// version does not declare is deleted, written then only through `/v1`.)
async fn delete_table(tx: &Tx<'_>, table: &str) -> StoreResult<TableDeleted> {
    tx.query_opt(
        "SELECT 1 FROM doc_tables WHERE name = $1 FOR UPDATE",
        &[&table],
    )
    .await?
    .ok_or_else(|| StoreError::TableNotFound(table.to_owned()))?;
    tx.execute(
        "SELECT 1 FROM stream_heads WHERE tbl = $1 FOR UPDATE",
        &[&table],
    )
    .await?;
    let items = tx
        .execute("DELETE FROM items WHERE tbl = $1", &[&table])
        .await?;
    let change_records = tx
        .execute("DELETE FROM stream_records WHERE tbl = $1", &[&table])
        .await?;
    let checkpoints = tx
        .execute(
            "DELETE FROM stream_checkpoints WHERE starts_with(consumer, $1)",
            &[&stream_consumer_prefix(table)],
        )
        .await?;
    tx.execute("DELETE FROM stream_heads WHERE tbl = $1", &[&table])
        .await?;
    tx.execute("DELETE FROM doc_tables WHERE name = $1", &[&table])
        .await?;
    Ok(TableDeleted {
        items,
        change_records,
        checkpoints,
    })
}

#[async_trait::async_trait]
impl TableStore for PgStore {
    async fn declare_tables(&self, tables: &[TableConfig]) -> StoreResult<()> {
        in_tx!(self, |tx| declare(tx, tables).await)
    }

    async fn tables(&self) -> StoreResult<Vec<TableConfig>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    &format!("SELECT {CONFIG_COLUMNS} FROM doc_tables ORDER BY name"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(config_from_row).collect())
        })
    }

    async fn put_item(
        &self,
        table: &str,
        key: ItemKey,
        document: Vec<u8>,
        condition: PutCondition,
        traceparent: Option<String>,
    ) -> StoreResult<Result<u64, ConditionFailed>> {
        in_tx!(self, |tx| put(
            tx,
            table,
            &key,
            &document,
            condition,
            traceparent.clone()
        )
        .await)
    }

    async fn get_item(&self, table: &str, key: &ItemKey) -> StoreResult<Option<StoredItem>> {
        in_tx!(self, |tx| {
            let config = load_table(tx, table).await?;
            let sk = config.stored_sort_key(key)?;
            let row = tx
                .query_opt(
                    "SELECT pk, sk, document, version, updated_at FROM items
                     WHERE tbl = $1 AND pk = $2 AND sk = $3",
                    &[&table, &key.partition, &sk],
                )
                .await?;
            Ok(row.map(|row| item_from_row(&row, config.sort_key.is_some())))
        })
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &ItemKey,
        if_version: Option<u64>,
        traceparent: Option<String>,
    ) -> StoreResult<Result<Option<u64>, ConditionFailed>> {
        in_tx!(self, |tx| delete(
            tx,
            table,
            key,
            if_version,
            traceparent.clone()
        )
        .await)
    }

    async fn query(
        &self,
        table: &str,
        partition: &str,
        range: &SortRange,
        after: Option<&ItemKey>,
        limit: u32,
    ) -> StoreResult<ItemPage> {
        in_tx!(self, |tx| query(tx, table, partition, range, after, limit)
            .await)
    }

    async fn scan(
        &self,
        table: &str,
        after: Option<&ItemKey>,
        limit: u32,
    ) -> StoreResult<ItemPage> {
        in_tx!(self, |tx| scan(tx, table, after, limit).await)
    }

    async fn read_stream(
        &self,
        table: &str,
        after: u64,
        limit: u32,
        lane: Option<Lane>,
    ) -> StoreResult<Vec<ChangeRecord>> {
        in_tx!(self, |tx| read_stream(tx, table, after, limit, lane).await)
    }

    async fn latest_seq(&self, table: &str) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            load_table(tx, table).await?;
            latest_seq(tx, table).await
        })
    }

    async fn seq_before_time(&self, table: &str, at: Timestamp) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            load_table(tx, table).await?;
            let first: Option<i64> = tx
                .query_one(
                    "SELECT MIN(seq) FROM stream_records WHERE tbl = $1 AND at >= $2",
                    &[&table, &int8(at)],
                )
                .await?
                .get(0);
            match first {
                Some(seq) => Ok(seq.saturating_sub(1) as u64),
                // Nothing that recent yet: start after everything so far.
                None => latest_seq(tx, table).await,
            }
        })
    }

    async fn checkpoint(&self, consumer: &str) -> StoreResult<Option<u64>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    "SELECT seq FROM stream_checkpoints WHERE consumer = $1",
                    &[&consumer],
                )
                .await?;
            Ok(row.map(|row| row.get::<_, i64>(0) as u64))
        })
    }

    async fn checkpoints(&self, prefix: &str) -> StoreResult<Vec<(String, u64)>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT consumer, seq FROM stream_checkpoints
                     WHERE starts_with(consumer, $1) ORDER BY consumer",
                    &[&prefix],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
                .collect())
        })
    }

    async fn set_checkpoint(
        &self,
        consumer: &str,
        seq: u64,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<()> {
        in_tx!(self, |tx| {
            if let Some(fence) = fence {
                crate::lease::check_fence(tx, fence).await?;
            }
            tx.execute(
                "INSERT INTO stream_checkpoints (consumer, seq) VALUES ($1, $2)
                 ON CONFLICT (consumer) DO UPDATE SET seq = GREATEST(stream_checkpoints.seq, excluded.seq)",
                &[&consumer, &int8(seq)],
            )
            .await
            .map(drop)
        })
    }

    async fn delete_table(&self, table: &str) -> StoreResult<TableDeleted> {
        in_tx!(self, |tx| delete_table(tx, table).await)
    }

    async fn expire_streams(&self) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            tx.execute(
                "DELETE FROM stream_records r USING doc_tables t
                 WHERE t.name = r.tbl AND r.at <= $1 - t.stream_retention_ms",
                &[&tx.now],
            )
            .await
        })
    }
}
