//! `TableStore` on SQLite: items keyed by (table, partition, sort), each
//! write and its change record in one savepoint of the batch's transaction,
//! and stream checkpoints.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::table::{
    ChangeKind, ChangeRecord, ConditionFailed, ItemKey, ItemPage, Lane, PutCondition, SortRange,
    StoredItem, StreamView, TableConfig, TableDeleted, TableStore, key_hash,
    stream_consumer_prefix, stream_signal,
};
use nimbus_store::{StoreError, StoreResult, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS doc_tables (
            name TEXT PRIMARY KEY,
            partition_key TEXT NOT NULL,
            sort_key TEXT,
            stream TEXT,
            stream_retention_ms INTEGER NOT NULL,
            max_item_bytes INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS items (
            tbl TEXT NOT NULL,
            pk TEXT NOT NULL,
            sk TEXT NOT NULL,
            document BLOB NOT NULL,
            version INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tbl, pk, sk)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS stream_records (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            tbl TEXT NOT NULL,
            kind TEXT NOT NULL,
            pk TEXT NOT NULL,
            sk TEXT,
            key_hash INTEGER NOT NULL,
            new_image BLOB,
            old_image BLOB,
            version INTEGER NOT NULL,
            at INTEGER NOT NULL,
            trace TEXT
        );
        CREATE INDEX IF NOT EXISTS stream_by_table ON stream_records (tbl, seq);
        CREATE TABLE IF NOT EXISTS stream_checkpoints (
            consumer TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        );",
    )
    .map_err(backend)
}

fn load_table(tx: &Tx<'_>, name: &str) -> StoreResult<TableConfig> {
    tx.query_row(
        "SELECT partition_key, sort_key, stream, stream_retention_ms, max_item_bytes
         FROM doc_tables WHERE name = ?1",
        params![name],
        |row| {
            Ok(TableConfig {
                name: name.to_owned(),
                partition_key: row.get(0)?,
                sort_key: row.get(1)?,
                stream: row
                    .get::<_, Option<String>>(2)?
                    .and_then(|s| StreamView::parse(&s)),
                stream_retention_ms: row.get::<_, i64>(3)? as u64,
                max_item_bytes: row.get::<_, i64>(4)? as usize,
            })
        },
    )
    .optional()
    .map_err(backend)?
    .ok_or_else(|| StoreError::TableNotFound(name.to_owned()))
}

fn current(tx: &Tx<'_>, table: &str, pk: &str, sk: &str) -> StoreResult<Option<(Vec<u8>, u64)>> {
    tx.query_row(
        "SELECT document, version FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
        params![table, pk, sk],
        |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)),
    )
    .optional()
    .map_err(backend)
}

struct Change<'a> {
    kind: ChangeKind,
    key: &'a ItemKey,
    new: Option<&'a [u8]>,
    old: Option<&'a [u8]>,
    version: u64,
    traceparent: Option<String>,
}

fn record_change(tx: &Tx<'_>, table: &TableConfig, change: Change<'_>) -> StoreResult<()> {
    let Some(view) = table.stream else {
        return Ok(());
    };
    tx.execute(
        "INSERT INTO stream_records (tbl, kind, pk, sk, key_hash, new_image, old_image, version, at, trace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            table.name,
            change.kind.as_str(),
            change.key.partition,
            change.key.sort,
            key_hash(&change.key.partition),
            change.new.filter(|_| view.keeps_new()),
            change.old.filter(|_| view.keeps_old()),
            change.version as i64,
            tx.now as i64,
            change.traceparent,
        ],
    )
    .map_err(backend)?;
    tx.signal(&stream_signal(&table.name));
    Ok(())
}

fn put(
    tx: &Tx<'_>,
    table: &str,
    key: &ItemKey,
    document: &[u8],
    condition: PutCondition,
    traceparent: Option<String>,
) -> StoreResult<Result<u64, ConditionFailed>> {
    let config = load_table(tx, table)?;
    if document.len() > config.max_item_bytes {
        return Err(StoreError::ItemTooLarge {
            size: document.len(),
            limit: config.max_item_bytes,
        });
    }
    let sk = config.stored_sort_key(key)?;
    let existing = current(tx, table, &key.partition, &sk)?;
    let current_version = existing.as_ref().map(|(_, v)| *v);
    if !condition.allows(current_version) {
        return Ok(Err(ConditionFailed { current_version }));
    }
    let version = current_version.map_or(1, |v| v + 1);
    tx.execute(
        "INSERT INTO items (tbl, pk, sk, document, version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tbl, pk, sk) DO UPDATE SET document = excluded.document,
             version = excluded.version, updated_at = excluded.updated_at",
        params![table, key.partition, sk, document, version as i64, tx.now as i64],
    )
    .map_err(backend)?;
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
    record_change(tx, &config, change)?;
    Ok(Ok(version))
}

fn delete(
    tx: &Tx<'_>,
    table: &str,
    key: &ItemKey,
    if_version: Option<u64>,
    traceparent: Option<String>,
) -> StoreResult<Result<Option<u64>, ConditionFailed>> {
    let config = load_table(tx, table)?;
    let sk = config.stored_sort_key(key)?;
    let existing = current(tx, table, &key.partition, &sk)?;
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
        "DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
        params![table, key.partition, sk],
    )
    .map_err(backend)?;
    let change = Change {
        kind: ChangeKind::Remove,
        key,
        new: None,
        old: Some(&old),
        version,
        traceparent,
    };
    record_change(tx, &config, change)?;
    Ok(Ok(Some(version)))
}

fn item_from_row(row: &rusqlite::Row<'_>, has_sort: bool) -> rusqlite::Result<StoredItem> {
    let sk: String = row.get(1)?;
    Ok(StoredItem {
        key: ItemKey {
            partition: row.get(0)?,
            sort: has_sort.then_some(sk),
        },
        document: row.get(2)?,
        version: row.get::<_, i64>(3)? as u64,
        updated_at: row.get::<_, i64>(4)? as Timestamp,
    })
}

/// Runs an item listing that fetches one row more than a page, to know
/// whether another page follows.
fn page(
    tx: &Tx<'_>,
    config: &TableConfig,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    limit: u32,
) -> StoreResult<ItemPage> {
    let has_sort = config.sort_key.is_some();
    let mut statement = tx.conn.prepare_cached(sql).map_err(backend)?;
    let mut items = statement
        .query_map(params, |row| item_from_row(row, has_sort))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = more.then(|| items.last().map(|i| i.key.clone())).flatten();
    Ok(ItemPage { items, next })
}

fn query(
    tx: &Tx<'_>,
    table: &str,
    partition: &str,
    range: &SortRange,
    after: Option<&ItemKey>,
    limit: u32,
) -> StoreResult<ItemPage> {
    let config = load_table(tx, table)?;
    let after_sk = after.and_then(|k| k.sort.clone());
    let (from, to, prefix) = match range {
        SortRange::All => (None, None, None),
        SortRange::Prefix(p) => (Some(p.clone()), None, Some(p.clone())),
        SortRange::Between { from, to } => (from.clone(), to.clone(), None),
    };
    let fetch = i64::from(limit) + 1;
    page(
        tx,
        &config,
        "SELECT pk, sk, document, version, updated_at FROM items
         WHERE tbl = +?1 AND pk = +?2
           AND (?3 IS NULL OR sk >= ?3) AND (?4 IS NULL OR sk <= ?4)
           AND (?5 IS NULL OR substr(sk, 1, length(?5)) = ?5)
           AND (?6 IS NULL OR sk > ?6)
         ORDER BY sk LIMIT +?7",
        &[&table, &partition, &from, &to, &prefix, &after_sk, &fetch],
        limit,
    )
}

fn scan(tx: &Tx<'_>, table: &str, after: Option<&ItemKey>, limit: u32) -> StoreResult<ItemPage> {
    let config = load_table(tx, table)?;
    let after_pk = after.map(|k| k.partition.clone());
    let after_sk = after.map(|k| k.sort.clone().unwrap_or_default());
    let fetch = i64::from(limit) + 1;
    page(
        tx,
        &config,
        "SELECT pk, sk, document, version, updated_at FROM items
         WHERE tbl = +?1 AND (?2 IS NULL OR (pk, sk) > (?2, ?3))
         ORDER BY pk, sk LIMIT +?4",
        &[&table, &after_pk, &after_sk, &fetch],
        limit,
    )
}

/// Change records of table ?1 after sequence ?2 in lane ?4 of ?3, at most
/// ?5. (`+?1`: see [`crate::queue::RECEIVE`].)
pub(crate) const READ_STREAM: &str =
    "SELECT seq, kind, pk, sk, new_image, old_image, version, at, trace
     FROM stream_records
     WHERE tbl = +?1 AND seq > ?2 AND key_hash % ?3 = ?4
     ORDER BY seq LIMIT +?5";

fn read_stream(
    tx: &Tx<'_>,
    table: &str,
    after: u64,
    limit: u32,
    lane: Option<Lane>,
) -> StoreResult<Vec<ChangeRecord>> {
    load_table(tx, table)?;
    let (lanes, index) = lane.map_or((1, 0), |l| (i64::from(l.lanes.max(1)), i64::from(l.index)));
    let mut statement = tx.conn.prepare_cached(READ_STREAM).map_err(backend)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    statement
        .query_map(
            params![table, after, lanes, index, i64::from(limit)],
            |row| {
                let kind = match row.get::<_, String>(1)?.as_str() {
                    "insert" => ChangeKind::Insert,
                    "modify" => ChangeKind::Modify,
                    _ => ChangeKind::Remove,
                };
                Ok(ChangeRecord {
                    seq: row.get::<_, i64>(0)? as u64,
                    kind,
                    key: ItemKey {
                        partition: row.get(2)?,
                        sort: row.get(3)?,
                    },
                    new_image: row.get(4)?,
                    old_image: row.get(5)?,
                    version: row.get::<_, i64>(6)? as u64,
                    at: row.get::<_, i64>(7)? as Timestamp,
                    traceparent: row.get(8)?,
                })
            },
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)
}

fn declare(tx: &Tx<'_>, tables: &[TableConfig]) -> StoreResult<()> {
    for t in tables {
        tx.execute(
            "INSERT INTO doc_tables (name, partition_key, sort_key, stream, stream_retention_ms, max_item_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET partition_key = excluded.partition_key,
                 sort_key = excluded.sort_key, stream = excluded.stream,
                 stream_retention_ms = excluded.stream_retention_ms,
                 max_item_bytes = excluded.max_item_bytes",
            params![
                t.name,
                t.partition_key,
                t.sort_key,
                t.stream.map(StreamView::as_str),
                i64::try_from(t.stream_retention_ms).unwrap_or(i64::MAX),
                t.max_item_bytes as i64,
            ],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn delete_table(tx: &Tx<'_>, table: &str) -> StoreResult<TableDeleted> {
    load_table(tx, table)?;
    let items = tx
        .execute("DELETE FROM items WHERE tbl = ?1", params![table])
        .map_err(backend)?;
    let change_records = tx
        .execute("DELETE FROM stream_records WHERE tbl = ?1", params![table])
        .map_err(backend)?;
    let checkpoints = tx
        .execute(
            "DELETE FROM stream_checkpoints WHERE substr(consumer, 1, length(?1)) = ?1",
            params![stream_consumer_prefix(table)],
        )
        .map_err(backend)?;
    tx.execute("DELETE FROM doc_tables WHERE name = ?1", params![table])
        .map_err(backend)?;
    Ok(TableDeleted {
        items: items as u64,
        change_records: change_records as u64,
        checkpoints: checkpoints as u64,
    })
}

#[async_trait::async_trait]
impl TableStore for SqliteStore {
    async fn declare_tables(&self, tables: &[TableConfig]) -> StoreResult<()> {
        let tables = tables.to_vec();
        self.writer.run(move |tx| declare(tx, &tables)).await
    }

    async fn tables(&self) -> StoreResult<Vec<TableConfig>> {
        self.writer
            .run(|tx| {
                let names: Vec<String> = tx
                    .conn
                    .prepare_cached("SELECT name FROM doc_tables ORDER BY name")
                    .map_err(backend)?
                    .query_map([], |row| row.get(0))
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                names.iter().map(|n| load_table(tx, n)).collect()
            })
            .await
    }

    async fn put_item(
        &self,
        table: &str,
        key: ItemKey,
        document: Vec<u8>,
        condition: PutCondition,
        traceparent: Option<String>,
    ) -> StoreResult<Result<u64, ConditionFailed>> {
        let table = table.to_owned();
        self.writer
            .run(move |tx| put(tx, &table, &key, &document, condition, traceparent))
            .await
    }

    async fn get_item(&self, table: &str, key: &ItemKey) -> StoreResult<Option<StoredItem>> {
        let (table, key) = (table.to_owned(), key.clone());
        self.writer
            .run(move |tx| {
                let config = load_table(tx, &table)?;
                let sk = config.stored_sort_key(&key)?;
                tx.query_row(
                    "SELECT pk, sk, document, version, updated_at FROM items
                     WHERE tbl = ?1 AND pk = ?2 AND sk = ?3",
                    params![table, key.partition, sk],
                    |row| item_from_row(row, config.sort_key.is_some()),
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn delete_item(
        &self,
        table: &str,
        key: &ItemKey,
        if_version: Option<u64>,
        traceparent: Option<String>,
    ) -> StoreResult<Result<Option<u64>, ConditionFailed>> {
        let (table, key) = (table.to_owned(), key.clone());
        self.writer
            .run(move |tx| delete(tx, &table, &key, if_version, traceparent))
            .await
    }

    async fn query(
        &self,
        table: &str,
        partition: &str,
        range: &SortRange,
        after: Option<&ItemKey>,
        limit: u32,
    ) -> StoreResult<ItemPage> {
        let (table, partition, range, after) = (
            table.to_owned(),
            partition.to_owned(),
            range.clone(),
            after.cloned(),
        );
        self.writer
            .run(move |tx| query(tx, &table, &partition, &range, after.as_ref(), limit))
            .await
    }

    async fn scan(
        &self,
        table: &str,
        after: Option<&ItemKey>,
        limit: u32,
    ) -> StoreResult<ItemPage> {
        let (table, after) = (table.to_owned(), after.cloned());
        self.writer
            .run(move |tx| scan(tx, &table, after.as_ref(), limit))
            .await
    }

    async fn read_stream(
        &self,
        table: &str,
        after: u64,
        limit: u32,
        lane: Option<Lane>,
    ) -> StoreResult<Vec<ChangeRecord>> {
        let table = table.to_owned();
        self.writer
            .run(move |tx| read_stream(tx, &table, after, limit, lane))
            .await
    }

    async fn latest_seq(&self, table: &str) -> StoreResult<u64> {
        let table = table.to_owned();
        self.writer
            .run(move |tx| {
                load_table(tx, &table)?;
                tx.query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM stream_records WHERE tbl = ?1",
                    params![table],
                    |row| row.get::<_, i64>(0),
                )
                .map(|s| s as u64)
                .map_err(backend)
            })
            .await
    }

    async fn seq_before_time(&self, table: &str, at: Timestamp) -> StoreResult<u64> {
        let table = table.to_owned();
        self.writer
            .run(move |tx| {
                load_table(tx, &table)?;
                let at = i64::try_from(at).unwrap_or(i64::MAX);
                let first: Option<i64> = tx
                    .query_row(
                        "SELECT MIN(seq) FROM stream_records WHERE tbl = ?1 AND at >= ?2",
                        params![table, at],
                        |row| row.get(0),
                    )
                    .map_err(backend)?;
                match first {
                    Some(seq) => Ok(seq.saturating_sub(1) as u64),
                    // Nothing that recent yet: start after everything so far.
                    None => tx
                        .query_row(
                            "SELECT COALESCE(MAX(seq), 0) FROM stream_records WHERE tbl = ?1",
                            params![table],
                            |row| row.get::<_, i64>(0),
                        )
                        .map(|s| s as u64)
                        .map_err(backend),
                }
            })
            .await
    }

    async fn checkpoint(&self, consumer: &str) -> StoreResult<Option<u64>> {
        let consumer = consumer.to_owned();
        self.writer
            .run(move |tx| {
                tx.query_row(
                    "SELECT seq FROM stream_checkpoints WHERE consumer = ?1",
                    params![consumer],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map(|s| s.map(|s| s as u64))
                .map_err(backend)
            })
            .await
    }

    async fn checkpoints(&self, prefix: &str) -> StoreResult<Vec<(String, u64)>> {
        let prefix = prefix.to_owned();
        self.writer
            .run(move |tx| {
                tx.conn
                    .prepare_cached(
                        "SELECT consumer, seq FROM stream_checkpoints
                         WHERE substr(consumer, 1, length(?1)) = ?1 ORDER BY consumer",
                    )
                    .map_err(backend)?
                    .query_map(params![prefix], |row| {
                        Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                    })
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)
            })
            .await
    }

    async fn set_checkpoint(
        &self,
        consumer: &str,
        seq: u64,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<()> {
        let consumer = consumer.to_owned();
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let fence = fence.cloned();
        self.writer
            .run(move |tx| {
                if let Some(fence) = &fence {
                    crate::lease::check_fence(tx, fence)?;
                }
                tx.execute(
                    "INSERT INTO stream_checkpoints (consumer, seq) VALUES (?1, ?2)
                     ON CONFLICT (consumer) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                    params![consumer, seq],
                )
                .map(drop)
                .map_err(backend)
            })
            .await
    }

    async fn delete_table(&self, table: &str) -> StoreResult<TableDeleted> {
        let table = table.to_owned();
        self.writer.run(move |tx| delete_table(tx, &table)).await
    }

    async fn expire_streams(&self) -> StoreResult<u64> {
        self.writer
            .run(|tx| {
                tx.execute(
                    "DELETE FROM stream_records WHERE seq IN (
                         SELECT r.seq FROM stream_records r JOIN doc_tables t ON t.name = r.tbl
                         WHERE r.at + t.stream_retention_ms <= ?1)",
                    params![tx.now as i64],
                )
                .map(|n| n as u64)
                .map_err(backend)
            })
            .await
    }
}
