//! `BucketStore` on SQLite: object rows (keys as BLOBs, so order and prefix
//! ranges are byte-wise) and the sequencer, changed in the same savepoint as
//! the object events sent through `queue::send` and the end of the upload's
//! registration (`uploads`).

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::bucket::{
    BucketDeleted, BucketStore, EventsFor, ListPage, ListQuery, Listing, NewObject, ObjectMeta,
    PutOutcome,
};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS objects (
            bucket TEXT NOT NULL,
            key BLOB NOT NULL,
            size INTEGER NOT NULL,
            etag TEXT NOT NULL,
            content_type TEXT NOT NULL,
            user_metadata TEXT NOT NULL,
            blob TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            sequencer INTEGER NOT NULL,
            PRIMARY KEY (bucket, key)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS objects_blob ON objects (bucket, blob);
        CREATE TABLE IF NOT EXISTS object_sequencer (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            last INTEGER NOT NULL
        );",
    )
    .map_err(backend)
}

/// Schema version 2: the registry of uploads in flight.
pub(crate) fn migrate_uploads(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS uploads (
            bucket TEXT NOT NULL,
            blob TEXT NOT NULL,
            begun_at INTEGER NOT NULL,
            PRIMARY KEY (bucket, blob)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS uploads_begun ON uploads (begun_at);",
    )
    .map_err(backend)
}

/// Schema version 3: who began each upload (empty in registrations from
/// version 2, which end only by the bound).
pub(crate) fn migrate_uploader(conn: &Connection) -> StoreResult<()> {
    if !crate::schema::has_column(conn, "uploads", "uploader")? {
        conn.execute_batch("ALTER TABLE uploads ADD COLUMN uploader TEXT;")
            .map_err(backend)?;
    }
    Ok(())
}

/// Ends the registration of `blob`'s upload; `false` if there was none.
fn end_upload(tx: &Tx<'_>, bucket: &str, blob: &str) -> StoreResult<bool> {
    tx.execute(
        "DELETE FROM uploads WHERE bucket = ?1 AND blob = ?2",
        params![bucket, blob],
    )
    .map(|n| n > 0)
    .map_err(backend)
}

/// The next sequencer: one counter for every key, so each key's events are
/// increasing, through deletes and re-creations too.
fn next_sequencer(tx: &Tx<'_>) -> StoreResult<u64> {
    tx.execute(
        "INSERT INTO object_sequencer (id, last) VALUES (1, 1)
         ON CONFLICT (id) DO UPDATE SET last = last + 1",
        [],
    )
    .map_err(backend)?;
    tx.query_row("SELECT last FROM object_sequencer WHERE id = 1", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(backend)
}

const COLUMNS: &str = "key, size, etag, content_type, user_metadata, blob, created_at, sequencer";

fn row_to_meta(bucket: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectMeta> {
    let key: Vec<u8> = row.get(0)?;
    Ok(ObjectMeta {
        bucket: bucket.to_owned(),
        key: String::from_utf8_lossy(&key).into_owned(),
        size: row.get::<_, i64>(1)? as u64,
        etag: row.get(2)?,
        content_type: row.get(3)?,
        user_metadata: serde_json::from_str::<BTreeMap<String, String>>(&row.get::<_, String>(4)?)
            .unwrap_or_default(),
        blob: row.get(5)?,
        created_at: row.get::<_, i64>(6)? as u64,
        sequencer: row.get::<_, i64>(7)? as u64,
    })
}

fn get(tx: &Tx<'_>, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM objects WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key.as_bytes()],
        |row| row_to_meta(bucket, row),
    )
    .optional()
    .map_err(backend)
}

fn send_events(tx: &Tx<'_>, events: Vec<(String, nimbus_store::SendMessage)>) -> StoreResult<()> {
    for (queue, message) in events {
        crate::queue::send(tx, &queue, vec![message])?;
    }
    Ok(())
}

fn put(tx: &Tx<'_>, bucket: &str, new: NewObject, events: EventsFor) -> StoreResult<PutOutcome> {
    if !end_upload(tx, bucket, &new.blob)? {
        return Err(StoreError::UploadNotRegistered(new.blob));
    }
    let replaced_blob = get(tx, bucket, &new.key)?.map(|old| old.blob);
    let object = ObjectMeta {
        bucket: bucket.to_owned(),
        key: new.key,
        size: new.size,
        etag: new.etag,
        content_type: new.content_type,
        user_metadata: new.user_metadata,
        blob: new.blob,
        created_at: tx.now,
        sequencer: next_sequencer(tx)?,
    };
    tx.execute(
        "INSERT OR REPLACE INTO objects (bucket, key, size, etag, content_type, user_metadata,
                                         blob, created_at, sequencer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            bucket,
            object.key.as_bytes(),
            object.size as i64,
            object.etag,
            object.content_type,
            serde_json::to_string(&object.user_metadata).unwrap_or_else(|_| "{}".to_owned()),
            object.blob,
            object.created_at as i64,
            object.sequencer as i64,
        ],
    )
    .map_err(backend)?;
    send_events(tx, events(&object))?;
    Ok(PutOutcome {
        object,
        replaced_blob,
    })
}

fn delete(
    tx: &Tx<'_>,
    bucket: &str,
    key: &str,
    events: EventsFor,
) -> StoreResult<Option<ObjectMeta>> {
    let Some(mut removed) = get(tx, bucket, key)? else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
        params![bucket, key.as_bytes()],
    )
    .map_err(backend)?;
    removed.sequencer = next_sequencer(tx)?;
    removed.created_at = tx.now;
    send_events(tx, events(&removed))?;
    Ok(Some(removed))
}

fn list(tx: &Tx<'_>, bucket: &str, query: &ListQuery) -> StoreResult<ListPage> {
    let mut select = tx
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM objects WHERE bucket = ?1 AND key >= ?2
             AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT +?4"
        ))
        .map_err(backend)?;
    let mut listing = Listing::new(query);
    while let Some(fetch) = listing.next_fetch() {
        let objects = select
            .query_map(
                params![bucket, fetch.from, fetch.end, fetch.limit as i64],
                |row| row_to_meta(bucket, row),
            )
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        listing.take(objects);
    }
    Ok(listing.finish())
}

fn unreferenced(tx: &Tx<'_>, bucket: &str, blobs: Vec<String>) -> StoreResult<Vec<String>> {
    let mut out = Vec::new();
    for blob in blobs {
        let used = tx
            .query_row(
                "SELECT 1 FROM objects WHERE bucket = ?1 AND blob = ?2
                 UNION ALL SELECT 1 FROM uploads WHERE bucket = ?1 AND blob = ?2",
                params![bucket, blob],
                |_| Ok(()),
            )
            .optional()
            .map_err(backend)?;
        if used.is_none() {
            out.push(blob);
        }
    }
    Ok(out)
}

/// The distinct buckets of `objects`, one index probe each (a loose index
/// scan), not a pass over every object.
const BUCKET_NAMES: &str = "WITH RECURSIVE names (name) AS (
        SELECT (SELECT min(bucket) FROM objects)
        UNION ALL
        SELECT (SELECT min(bucket) FROM objects WHERE bucket > names.name)
        FROM names WHERE names.name IS NOT NULL)
     SELECT name FROM names WHERE name IS NOT NULL";

fn delete_bucket(tx: &Tx<'_>, bucket: &str) -> StoreResult<Option<BucketDeleted>> {
    let (objects, bytes) = tx
        .query_row(
            "SELECT count(*), COALESCE(sum(size), 0) FROM objects WHERE bucket = ?1",
            params![bucket],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
        )
        .map_err(backend)?;
    tx.execute("DELETE FROM objects WHERE bucket = ?1", params![bucket])
        .map_err(backend)?;
    let uploads = tx
        .execute("DELETE FROM uploads WHERE bucket = ?1", params![bucket])
        .map_err(backend)? as u64;
    Ok((objects > 0 || uploads > 0).then_some(BucketDeleted {
        objects,
        bytes,
        uploads,
    }))
}

#[async_trait::async_trait]
impl BucketStore for SqliteStore {
    async fn begin_upload(&self, bucket: &str, blob: &str, uploader: &str) -> StoreResult<()> {
        let (bucket, blob, uploader) = (bucket.to_owned(), blob.to_owned(), uploader.to_owned());
        self.writer
            .run(move |tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO uploads (bucket, blob, begun_at, uploader)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![bucket, blob, tx.now as i64, uploader],
                )
                .map(drop)
                .map_err(backend)
            })
            .await
    }

    async fn abandon_upload(&self, bucket: &str, blob: &str) -> StoreResult<()> {
        let (bucket, blob) = (bucket.to_owned(), blob.to_owned());
        self.writer
            .run(move |tx| end_upload(tx, &bucket, &blob).map(drop))
            .await
    }

    async fn expire_uploads(&self, older_than_ms: u64) -> StoreResult<u64> {
        self.writer
            .run(move |tx| {
                let cutoff = tx.now.saturating_sub(older_than_ms) as i64;
                tx.execute("DELETE FROM uploads WHERE begun_at <= ?1", [cutoff])
                    .map(|n| n as u64)
                    .map_err(backend)
            })
            .await
    }

    async fn abandon_uploads_of(&self, uploader: &str) -> StoreResult<u64> {
        let uploader = uploader.to_owned();
        self.writer
            .run(move |tx| {
                tx.execute("DELETE FROM uploads WHERE uploader = ?1", [uploader])
                    .map(|n| n as u64)
                    .map_err(backend)
            })
            .await
    }

    async fn commit_put(
        &self,
        bucket: &str,
        object: NewObject,
        events: EventsFor,
    ) -> StoreResult<PutOutcome> {
        let bucket = bucket.to_owned();
        self.writer
            .run(move |tx| put(tx, &bucket, object, events))
            .await
    }

    async fn commit_delete(
        &self,
        bucket: &str,
        key: &str,
        events: EventsFor,
    ) -> StoreResult<Option<ObjectMeta>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.writer
            .run(move |tx| delete(tx, &bucket, &key, events))
            .await
    }

    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.writer.run(move |tx| get(tx, &bucket, &key)).await
    }

    async fn list_objects(&self, bucket: &str, query: ListQuery) -> StoreResult<ListPage> {
        let bucket = bucket.to_owned();
        self.writer.run(move |tx| list(tx, &bucket, &query)).await
    }

    async fn unreferenced_blobs(
        &self,
        bucket: &str,
        blobs: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        let bucket = bucket.to_owned();
        self.writer
            .run(move |tx| unreferenced(tx, &bucket, blobs))
            .await
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<Option<BucketDeleted>> {
        let bucket = bucket.to_owned();
        self.writer.run(move |tx| delete_bucket(tx, &bucket)).await
    }

    async fn buckets_with_objects(&self) -> StoreResult<Vec<String>> {
        self.writer
            .run(|tx| {
                tx.conn
                    .prepare_cached(BUCKET_NAMES)
                    .map_err(backend)?
                    .query_map([], |row| row.get(0))
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)
            })
            .await
    }
}
