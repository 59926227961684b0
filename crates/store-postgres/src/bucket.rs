//! `BucketStore` on PostgreSQL: object rows (keys as `bytea`, so order and
//! prefix ranges are byte-wise). A change to a key takes a transaction-scoped
//! advisory lock on that key, then a number from a sequence: the next writer
//! of the same key numbers its event only after this commit, so each key's
//! sequencers increase in commit order, and writers of different keys share
//! no hot row. The object events go out through `queue::send` in the same
//! transaction, which also ends the upload's registration (`uploads`, the
//! registry every node's orphan sweep reads).

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::bucket::{
    BucketDeleted, BucketStore, EventsFor, ListPage, ListQuery, Listing, NewObject, ObjectMeta,
    PutOutcome,
};
use nimbus_store::{StoreError, StoreResult};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio_postgres::Row;

const COLUMNS: &str = "key, size, etag, content_type, user_metadata, blob, created_at, sequencer";

fn row_to_meta(bucket: &str, row: &Row) -> ObjectMeta {
    let key: Vec<u8> = row.get(0);
    ObjectMeta {
        bucket: bucket.to_owned(),
        key: String::from_utf8_lossy(&key).into_owned(),
        size: row.get::<_, i64>(1) as u64,
        etag: row.get(2),
        content_type: row.get(3),
        user_metadata: serde_json::from_str::<BTreeMap<String, String>>(row.get(4))
            .unwrap_or_default(),
        blob: row.get(5),
        created_at: row.get::<_, i64>(6) as u64,
        sequencer: row.get::<_, i64>(7) as u64,
    }
}

async fn get(tx: &Tx<'_>, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>> {
    Ok(tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM objects WHERE bucket = $1 AND key = $2"),
            &[&bucket, &key.as_bytes()],
        )
        .await?
        .map(|row| row_to_meta(bucket, &row)))
}

/// A 64-bit lock id for one key of one bucket (FNV-1a; a collision only
/// makes two keys wait for each other).
fn key_lock(bucket: &str, key: &str) -> i64 {
    let hash = bucket
        .bytes()
        .chain([0u8])
        .chain(key.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    hash as i64
}

/// Locks the key until the transaction ends, then takes its sequencer.
async fn lock_and_sequence(tx: &Tx<'_>, bucket: &str, key: &str) -> StoreResult<u64> {
    let row = tx
        .query_one(
            "SELECT pg_advisory_xact_lock($1), nextval('object_sequencer')",
            &[&key_lock(bucket, key)],
        )
        .await?;
    Ok(row.get::<_, i64>(1) as u64)
}

async fn send_events(
    tx: &Tx<'_>,
    events: Vec<(String, nimbus_store::SendMessage)>,
) -> StoreResult<()> {
    for (queue, message) in events {
        crate::queue::send(tx, &queue, vec![message]).await?;
    }
    Ok(())
}

/// The caller's events closure, which can run only once. A transaction is
/// retried only after a deadlock or serialization failure, which these
/// writes (one key lock, then inserts) do not meet; should one be retried
/// after building its events anyway, it fails rather than send them wrong.
struct Events(Mutex<Option<EventsFor>>);

impl Events {
    fn new(make: EventsFor) -> Self {
        Events(Mutex::new(Some(make)))
    }

    fn for_object(
        &self,
        object: &ObjectMeta,
    ) -> StoreResult<Vec<(String, nimbus_store::SendMessage)>> {
        let make = self.0.lock().unwrap().take().ok_or_else(|| {
            StoreError::Backend("an object commit was retried after building its events".into())
        })?;
        Ok(make(object))
    }
}

async fn put(
    tx: &Tx<'_>,
    bucket: &str,
    new: &NewObject,
    events: &Events,
) -> StoreResult<PutOutcome> {
    let registered = tx
        .execute(
            "DELETE FROM uploads WHERE bucket = $1 AND blob = $2",
            &[&bucket, &new.blob],
        )
        .await?;
    if registered == 0 {
        return Err(StoreError::UploadNotRegistered(new.blob.clone()));
    }
    let sequencer = lock_and_sequence(tx, bucket, &new.key).await?;
    let replaced_blob = get(tx, bucket, &new.key).await?.map(|old| old.blob);
    let object = ObjectMeta {
        bucket: bucket.to_owned(),
        key: new.key.clone(),
        size: new.size,
        etag: new.etag.clone(),
        content_type: new.content_type.clone(),
        user_metadata: new.user_metadata.clone(),
        blob: new.blob.clone(),
        created_at: tx.now as u64,
        sequencer,
    };
    tx.execute(
        "INSERT INTO objects (bucket, key, size, etag, content_type, user_metadata, blob, created_at, sequencer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (bucket, key) DO UPDATE SET size = excluded.size, etag = excluded.etag,
            content_type = excluded.content_type, user_metadata = excluded.user_metadata,
            blob = excluded.blob, created_at = excluded.created_at, sequencer = excluded.sequencer",
        &[
            &bucket,
            &object.key.as_bytes(),
            &int8(object.size),
            &object.etag,
            &object.content_type,
            &serde_json::to_string(&object.user_metadata).unwrap_or_else(|_| "{}".to_owned()),
            &object.blob,
            &tx.now,
            &int8(object.sequencer),
        ],
    )
    .await?;
    send_events(tx, events.for_object(&object)?).await?;
    Ok(PutOutcome {
        object,
        replaced_blob,
    })
}

async fn delete(
    tx: &Tx<'_>,
    bucket: &str,
    key: &str,
    events: &Events,
) -> StoreResult<Option<ObjectMeta>> {
    let sequencer = lock_and_sequence(tx, bucket, key).await?;
    let Some(mut removed) = get(tx, bucket, key).await? else {
        return Ok(None);
    };
    tx.execute(
        "DELETE FROM objects WHERE bucket = $1 AND key = $2",
        &[&bucket, &key.as_bytes()],
    )
    .await?;
    removed.sequencer = sequencer;
    removed.created_at = tx.now as u64;
    send_events(tx, events.for_object(&removed)?).await?;
    Ok(Some(removed))
}

async fn list(tx: &Tx<'_>, bucket: &str, query: &ListQuery) -> StoreResult<ListPage> {
    let mut listing = Listing::new(query);
    while let Some(fetch) = listing.next_fetch() {
        let rows = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM objects WHERE bucket = $1 AND key >= $2
                     AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4"
                ),
                &[&bucket, &fetch.from, &fetch.end, &(fetch.limit as i64)],
            )
            .await?;
        let objects = rows.iter().map(|row| row_to_meta(bucket, row)).collect();
        listing.take(objects);
    }
    Ok(listing.finish())
}

/// The distinct buckets of `objects`, one index probe each (a loose index
/// scan), not a pass over every object.
const BUCKET_NAMES: &str = "WITH RECURSIVE names (name) AS (
        SELECT (SELECT min(bucket) FROM objects)
        UNION ALL
        SELECT (SELECT min(bucket) FROM objects WHERE bucket > names.name)
        FROM names WHERE names.name IS NOT NULL)
     SELECT name FROM names WHERE name IS NOT NULL";

/// Ends the bucket's upload registrations first: a commit in flight holds
/// its registration's row until it commits, so this waits for it and the
/// object it made is deleted next (each statement sees what committed
/// before it); a commit after this one finds no registration and fails.
async fn delete_bucket(tx: &Tx<'_>, bucket: &str) -> StoreResult<Option<BucketDeleted>> {
    let uploads = tx
        .execute("DELETE FROM uploads WHERE bucket = $1", &[&bucket])
        .await?;
    let row = tx
        .query_one(
            "WITH gone AS (DELETE FROM objects WHERE bucket = $1 RETURNING size)
             SELECT count(*), COALESCE(sum(size), 0)::int8 FROM gone",
            &[&bucket],
        )
        .await?;
    let objects = row.get::<_, i64>(0) as u64;
    let bytes = row.get::<_, i64>(1) as u64;
    Ok((objects > 0 || uploads > 0).then_some(BucketDeleted {
        objects,
        bytes,
        uploads,
    }))
}

#[async_trait::async_trait]
impl BucketStore for PgStore {
    async fn begin_upload(&self, bucket: &str, blob: &str, uploader: &str) -> StoreResult<()> {
        self.db
            .statement(
                "INSERT INTO uploads (bucket, blob, begun_at, uploader)
                 VALUES ($1, $2, nimbus_now_ms($3), $4)
                 ON CONFLICT (bucket, blob) DO UPDATE SET begun_at = excluded.begun_at,
                    uploader = excluded.uploader",
                &[&bucket, &blob, &self.db.test_now(), &uploader],
                None,
            )
            .await
            .map(drop)
    }

    async fn abandon_upload(&self, bucket: &str, blob: &str) -> StoreResult<()> {
        self.db
            .statement(
                "DELETE FROM uploads WHERE bucket = $1 AND blob = $2",
                &[&bucket, &blob],
                None,
            )
            .await
            .map(drop)
    }

    async fn abandon_uploads_of(&self, uploader: &str) -> StoreResult<u64> {
        let rows = self
            .db
            .statement(
                "DELETE FROM uploads WHERE uploader = $1 RETURNING 1",
                &[&uploader],
                None,
            )
            .await?;
        Ok(rows.len() as u64)
    }

    async fn expire_uploads(&self, older_than_ms: u64) -> StoreResult<u64> {
        let rows = self
            .db
            .statement(
                "DELETE FROM uploads WHERE begun_at <= nimbus_now_ms($1) - $2 RETURNING 1",
                &[&self.db.test_now(), &int8(older_than_ms)],
                None,
            )
            .await?;
        Ok(rows.len() as u64)
    }

    async fn commit_put(
        &self,
        bucket: &str,
        object: NewObject,
        events: EventsFor,
    ) -> StoreResult<PutOutcome> {
        let events = Events::new(events);
        in_tx!(self, |tx| put(tx, bucket, &object, &events).await)
    }

    async fn commit_delete(
        &self,
        bucket: &str,
        key: &str,
        events: EventsFor,
    ) -> StoreResult<Option<ObjectMeta>> {
        let events = Events::new(events);
        in_tx!(self, |tx| delete(tx, bucket, key, &events).await)
    }

    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>> {
        in_tx!(self, |tx| get(tx, bucket, key).await)
    }

    async fn list_objects(&self, bucket: &str, query: ListQuery) -> StoreResult<ListPage> {
        in_tx!(self, |tx| list(tx, bucket, &query).await)
    }

    async fn delete_bucket(&self, bucket: &str) -> StoreResult<Option<BucketDeleted>> {
        in_tx!(self, |tx| delete_bucket(tx, bucket).await)
    }

    async fn buckets_with_objects(&self) -> StoreResult<Vec<String>> {
        in_tx!(self, |tx| {
            let rows = tx.query(BUCKET_NAMES, &[]).await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    async fn unreferenced_blobs(
        &self,
        bucket: &str,
        blobs: Vec<String>,
    ) -> StoreResult<Vec<String>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT b FROM unnest($2::text[]) AS b
                     WHERE NOT EXISTS (SELECT 1 FROM objects WHERE bucket = $1 AND blob = b)
                       AND NOT EXISTS (SELECT 1 FROM uploads WHERE bucket = $1 AND blob = b)",
                    &[&bucket, &blobs],
                )
                .await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}
