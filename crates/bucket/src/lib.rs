//! Buckets: object bytes through `object_store` (the local filesystem under
//! the data directory, or an S3 bucket every node shares), metadata and
//! object events through the store. An upload registers itself in the
//! store, writes a fresh blob, makes it durable, then commits the metadata
//! and its events in one transaction, which ends the registration; only
//! then is the object visible. A read streams the blob's bytes out as the
//! caller sends them (`get_stream`), memory bounded whatever the size. Keys,
//! content types, user metadata and sizes are checked here, for the API and
//! the bucket capability alike.

mod blob;
mod composite;
mod event;
mod meta;
mod multipart;
mod s3;
mod staging;
mod write;

pub use event::sequencer_text;
pub use meta::{
    CHECKSUM_ALGORITHMS, Checksums, MAX_CONTENT_TYPE_BYTES, MAX_USER_METADATA_BYTES, etag,
    multipart_etag,
};
pub use multipart::{
    MAX_PART_NUMBER, MIN_PART_BYTES, MultipartError, Part, UPLOAD_KEPT, Upload, part_number,
};
pub use nimbus_manifest::bucket::{MAX_KEY_BYTES, check_object_key, is_bucket_name};
pub use s3::{DEFAULT_REGION, S3Config, S3Location};
pub use write::{UploadError, Written};

use bytes::Bytes;
use futures::StreamExt as _;
use nimbus_manifest::{App, Bucket, ObjectEventKind, ObjectTrigger};
use nimbus_store::{BucketStore, ListPage, ListQuery, NewObject, ObjectMeta, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Most objects (plus common prefixes) in one listing page.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// Content type of an object uploaded without one.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// Reads of an object whose blob was replaced underneath before giving up.
const READ_ATTEMPTS: usize = 3;
/// How old an unreferenced blob must be before the sweep removes it.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);
/// How long an upload's registration keeps its blob from the sweep. Far
/// longer than an upload takes (one request, bounded by the S3 client's
/// timeout), so only a registration whose node died meanwhile reaches it;
/// an upload that did would fail at its commit rather than refer to a blob
/// the sweep may have removed.
pub const UPLOAD_BOUND: Duration = Duration::from_secs(3600);
/// Blobs the sweep asks the store about at once.
const SWEEP_BATCH: usize = 1000;

/// Where object bytes live.
#[derive(Debug, Clone)]
pub enum BlobStorage {
    /// A directory on this machine (by default `DATA_DIR/buckets`).
    Local(PathBuf),
    /// An S3 bucket, shared by every node.
    S3(Box<S3Config>),
}

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("bucket `{0}` does not exist")]
    NoSuchBucket(String),
    /// A bucket the version being served declares cannot be deleted.
    #[error(
        "bucket `{0}` is declared by the running version; remove it from the manifest and deploy first"
    )]
    Declared(String),
    #[error("object `{0}` does not exist")]
    NoSuchKey(String),
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the object is {size} bytes, over bucket `{bucket}`'s limit of {limit} bytes")]
    TooLarge {
        bucket: String,
        size: u64,
        limit: u64,
    },
    #[error("the range is not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object storage failed: {0}")]
    Blob(String),
}

impl BucketError {
    fn blob(e: impl std::fmt::Display) -> Self {
        BucketError::Blob(e.to_string())
    }
}

/// What to store with an object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    /// The uploader's trace context, carried on to the object's events.
    pub traceparent: Option<String>,
    /// The ETag to store instead of the bytes' MD5: a multipart upload's
    /// ([`multipart_etag`]), which S3 clients check against the parts.
    pub etag: Option<String>,
}

/// A byte range asked for by a reader, before it is checked against the
/// object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, inclusive; `last` absent means to the end.
    From { first: u64, last: Option<u64> },
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range this means for an object of `size` bytes, or
    /// `None` if none of it is in the object.
    pub fn resolve(self, size: u64) -> Option<std::ops::Range<u64>> {
        match self {
            ByteRange::From { first, last } => {
                let end = last.map_or(size, |l| l.saturating_add(1).min(size));
                (first < size && first < end).then_some(first..end)
            }
            ByteRange::Suffix(n) => (n > 0 && size > 0).then(|| size.saturating_sub(n)..size),
        }
    }
}

/// What deleting a bucket removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBucket {
    pub objects: u64,
    /// The objects' sizes added up.
    pub bytes: u64,
    /// Blobs removed from object storage; any left (a storage failure)
    /// go with the next orphan sweep.
    pub blobs_removed: usize,
}

/// An object's bytes (or the requested part of them) with its metadata.
#[derive(Debug)]
pub struct ObjectBytes {
    pub meta: ObjectMeta,
    pub bytes: Bytes,
    /// The part returned, when a range was asked for.
    pub range: Option<std::ops::Range<u64>>,
}

/// An object's bytes (or the requested part of them) as they are read,
/// with its metadata.
pub struct ObjectStream {
    pub meta: ObjectMeta,
    /// The checksums kept at upload, of the whole object whatever the range.
    pub checksums: Checksums,
    /// The part being read, when a range was asked for.
    pub range: Option<std::ops::Range<u64>>,
    /// Exactly [`ObjectStream::content_length`] bytes; should the blob end
    /// early or storage fail, an error ends it instead, so no reader takes a
    /// cut-off body for the object.
    pub body: futures::stream::BoxStream<'static, Result<Bytes, BucketError>>,
}

impl ObjectStream {
    /// The bytes the body delivers: the range's, else the object's.
    pub fn content_length(&self) -> u64 {
        self.range
            .as_ref()
            .map_or(self.meta.size, |r| r.end - r.start)
    }
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// `body`, checked to hold exactly `len` bytes: an error takes the place of
/// its end when it holds fewer, or of the chunk that passes `len`.
fn exactly(body: blob::ByteStream, len: u64) -> blob::ByteStream {
    futures::stream::try_unfold((body, len), move |(mut body, left)| async move {
        match body.next().await.transpose()? {
            Some(chunk) if chunk.len() as u64 > left => Err(BucketError::Blob(format!(
                "the blob held more than the {len} bytes being read"
            ))),
            Some(chunk) => {
                let left = left - chunk.len() as u64;
                Ok(Some((chunk, (body, left))))
            }
            None if left == 0 => Ok(None),
            None => Err(BucketError::Blob(format!(
                "the blob ended {left} bytes short of the {len} being read"
            ))),
        }
    })
    .boxed()
}

/// A blob being uploaded: given up (removed, its registration ended)
/// unless kept, also when dropped mid-upload, in a task of its own; not
/// once its commit is asked for (see [`Buckets::commit`]).
struct InFlight {
    blobs: Arc<blob::Blobs>,
    store: Arc<dyn BucketStore>,
    bucket: String,
    blob: String,
    settled: bool,
}

impl InFlight {
    fn new(buckets: &Buckets, bucket: &str, blob: &str) -> Self {
        InFlight {
            blobs: buckets.blobs.clone(),
            store: buckets.store.clone(),
            bucket: bucket.to_owned(),
            blob: blob.to_owned(),
            settled: false,
        }
    }

    /// The blob is referenced by a commit (or may be: the sweep decides).
    fn keep(mut self) {
        self.settled = true;
    }

    async fn discard(mut self) {
        self.settled = true;
        discard(&self.blobs, self.store.as_ref(), &self.bucket, &self.blob).await;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Without a runtime (the process is ending) this does not run: the
        // sweep at the next start removes the blob.
        let (blobs, store) = (self.blobs.clone(), self.store.clone());
        let (bucket, blob) = (
            std::mem::take(&mut self.bucket),
            std::mem::take(&mut self.blob),
        );
        self.blobs
            .cleanups()
            .spawn(async move { discard(&blobs, store.as_ref(), &bucket, &blob).await });
    }
}

/// Removes the blob of an upload given up on, then its registration; if
/// either fails, the sweep removes the blob once the registration ends or
/// expires.
async fn discard(blobs: &blob::Blobs, store: &dyn BucketStore, bucket: &str, blob: &str) {
    blobs.remove(bucket, blob).await;
    if let Err(e) = store.abandon_upload(bucket, blob).await {
        tracing::warn!(bucket, blob, "could not end an upload's registration: {e}");
    }
}

/// The app's buckets.
pub struct Buckets {
    buckets: BTreeMap<String, Bucket>,
    /// Object triggers by bucket.
    triggers: BTreeMap<String, Vec<ObjectTrigger>>,
    blobs: Arc<blob::Blobs>,
    store: Arc<dyn BucketStore>,
    /// Where committed object events are counted, if anywhere.
    metrics: Option<Arc<nimbus_metrics::Metrics>>,
    /// Whose uploads this process registers: the node id (see
    /// [`Buckets::with_uploader`]), else one of this process's own.
    uploader: String,
}

impl Buckets {
    /// Opens the app's buckets with their bytes under `root`.
    pub fn open(app: &App, root: &Path, store: Arc<dyn BucketStore>) -> Result<Self, BucketError> {
        let blobs = blob::Blobs::local(root.to_owned())?;
        for bucket in app.buckets.keys() {
            blob::prepare_dir(root, bucket)?;
        }
        Ok(Self::with_blobs(app, Arc::new(blobs), store))
    }

    /// Opens the app's buckets with their bytes in `storage`, checking that
    /// it can be reached (an S3 bucket, endpoint or credentials that do not
    /// work fail here, not at the first upload).
    pub async fn open_in(
        app: &App,
        storage: &BlobStorage,
        store: Arc<dyn BucketStore>,
    ) -> Result<Self, BucketError> {
        match storage {
            BlobStorage::Local(root) => Self::open(app, root, store),
            BlobStorage::S3(config) => {
                let blobs = blob::Blobs::s3(config)?;
                for bucket in app.buckets.keys() {
                    blobs.prepare(bucket).await?;
                }
                Ok(Self::with_blobs(app, Arc::new(blobs), store))
            }
        }
    }

    fn with_blobs(app: &App, blobs: Arc<blob::Blobs>, store: Arc<dyn BucketStore>) -> Self {
        let mut triggers: BTreeMap<String, Vec<ObjectTrigger>> = BTreeMap::new();
        for t in &app.object_triggers {
            triggers
                .entry(t.bucket.clone())
                .or_default()
                .push(t.clone());
        }
        Buckets {
            buckets: app.buckets.clone(),
            triggers,
            blobs,
            store,
            metrics: None,
            uploader: format!("process-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The same object storage with `app`'s buckets and object triggers (a
    /// new deployment's), preparing the storage of each bucket first.
    pub async fn for_app(&self, app: &App) -> Result<Self, BucketError> {
        for bucket in app.buckets.keys() {
            self.blobs.prepare(bucket).await?;
        }
        let mut next = Self::with_blobs(app, self.blobs.clone(), self.store.clone());
        next.metrics = self.metrics.clone();
        next.uploader = self.uploader.clone();
        Ok(next)
    }

    /// Where the object bytes are, for messages (never a credential).
    pub fn storage(&self) -> String {
        self.blobs.describe()
    }

    /// Waits for the clean-ups of the uploads given up so far by being
    /// dropped mid-body (their callers gone) to end: their blobs removed,
    /// their registrations ended, their S3 multipart uploads aborted. A
    /// server stopping waits for them, so none is cut off by the exit.
    pub async fn cleanups_settled(&self) {
        self.blobs.cleanups().settled().await;
    }

    /// Counts committed object events in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: Arc<nimbus_metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Registers this process's uploads under `node`, its node id, so the
    /// next process of the node ends what this one left in flight as it
    /// starts ([`Buckets::sweep_orphans_at_start`]).
    pub fn with_uploader(mut self, node: &str) -> Self {
        self.uploader = node.to_owned();
        self
    }

    /// The declared buckets, by name.
    pub fn list_buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.values()
    }

    pub fn bucket(&self, name: &str) -> Result<&Bucket, BucketError> {
        self.buckets
            .get(name)
            .ok_or_else(|| BucketError::NoSuchBucket(name.to_owned()))
    }

    fn checked(&self, bucket: &str, key: &str) -> Result<&Bucket, BucketError> {
        let b = self.bucket(bucket)?;
        check_object_key(key).map_err(BucketError::InvalidKey)?;
        Ok(b)
    }

    /// Whether `bucket`'s objects may be read (and removed): it is declared,
    /// or kept (a deployment dropped it, and the store still holds objects
    /// of it until it is deleted).
    async fn readable(&self, bucket: &str) -> Result<(), BucketError> {
        if self.buckets.contains_key(bucket) {
            return Ok(());
        }
        if !is_bucket_name(bucket) {
            return Err(BucketError::NoSuchBucket(bucket.to_owned()));
        }
        let probe = ListQuery {
            limit: 1,
            ..ListQuery::default()
        };
        if self
            .store
            .list_objects(bucket, probe)
            .await?
            .objects
            .is_empty()
        {
            return Err(BucketError::NoSuchBucket(bucket.to_owned()));
        }
        Ok(())
    }

    /// [`Buckets::readable`], and `key` a valid object key.
    async fn readable_key(&self, bucket: &str, key: &str) -> Result<(), BucketError> {
        check_object_key(key).map_err(BucketError::InvalidKey)?;
        self.readable(bucket).await
    }

    /// Stores an object; returns its metadata once it and its events are
    /// durable.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        options: PutOptions,
    ) -> Result<ObjectMeta, BucketError> {
        self.put_with_checksums(bucket, key, bytes, options, Checksums::default())
            .await
    }

    /// [`Buckets::put`], keeping `checksums` (checked by the caller against
    /// `bytes`) with the object for [`Buckets::get_stream`].
    pub async fn put_with_checksums(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
        options: PutOptions,
        checksums: Checksums,
    ) -> Result<ObjectMeta, BucketError> {
        let limit = self.checked(bucket, key)?.max_object_bytes;
        let size = bytes.len() as u64;
        if size > limit {
            return Err(BucketError::TooLarge {
                bucket: bucket.to_owned(),
                size,
                limit,
            });
        }
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        Ok(self
            .put_stream(bucket, key, body, options, |_, _| Ok(checksums))
            .await?)
    }

    /// Stores an object whose bytes arrive as `body`, written to object
    /// storage as they come (memory stays bounded whatever the size) and
    /// refused with [`BucketError::TooLarge`] as soon as they pass the
    /// bucket's limit. Once the body has ended and its bytes are durable,
    /// `check` is given the body and what was written (its size, and its
    /// MD5 unless `options` names the ETag), and says which checksums to
    /// keep, or refuses the upload; only then is the object committed and
    /// visible. Whatever fails, no object is stored and the blob goes (or,
    /// should even that fail, is left to the orphan sweep).
    pub async fn put_stream<S, E>(
        &self,
        bucket: &str,
        key: &str,
        mut body: S,
        options: PutOptions,
        check: impl FnOnce(S, &Written) -> Result<Checksums, E>,
    ) -> Result<ObjectMeta, UploadError<E>>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let limit = self.checked(bucket, key)?.max_object_bytes;
        let content_type = meta::content_type(options.content_type)?;
        meta::check_user_metadata(&options.user_metadata)?;
        let given_etag = match options.etag {
            Some(etag) if meta::is_etag(&etag) => Some(etag),
            Some(etag) => {
                return Err(BucketError::Invalid(format!("`{etag}` is not an MD5 ETag")).into());
            }
            None => None,
        };
        let blob = blob::Blobs::new_name();
        // Registered before a byte is written, so no node's sweep can take
        // the blob for an orphan while it is in flight.
        self.store
            .begin_upload(bucket, &blob, &self.uploader)
            .await?;
        // Should this future be dropped mid-upload (its client went away),
        // the guard gives the blob and its registration up.
        let guard = InFlight::new(self, bucket, &blob);
        let too_large = |size| BucketError::TooLarge {
            bucket: bucket.to_owned(),
            size,
            limit,
        };
        let target = self.blobs.blob_target(bucket, &blob);
        let written = match self
            .blobs
            .write_stream(target, &mut body, limit, given_etag.is_none(), too_large)
            .await
        {
            Ok(written) => written,
            Err(e) => {
                guard.discard().await;
                return Err(e);
            }
        };
        let checksums = match check(body, &written) {
            Ok(checksums) => checksums,
            Err(e) => {
                guard.discard().await;
                return Err(UploadError::Body(e));
            }
        };
        let etag = match (given_etag, written.md5) {
            (Some(etag), _) => etag,
            (None, Some(md5)) => meta::hex(&md5),
            (None, None) => unreachable!("the MD5 is taken when no ETag is given"),
        };
        let mut user_metadata = options.user_metadata;
        checksums.store_in(&mut user_metadata);
        let new = NewObject {
            key: key.to_owned(),
            size: written.size,
            etag,
            content_type,
            user_metadata,
            blob,
        };
        Ok(self.commit(bucket, new, guard, options.traceparent).await?)
    }

    /// Commits `new`, whose blob `guard` holds, with its object events;
    /// the object it replaced loses its blob.
    async fn commit(
        &self,
        bucket: &str,
        new: NewObject,
        mut guard: InFlight,
        traceparent: Option<String>,
    ) -> Result<ObjectMeta, BucketError> {
        // The store makes a commit it was sent whether or not its answer is
        // awaited, so from here a drop (the caller gone) keeps the blob, which
        // the commit may have made an object's: should it not have, the
        // sweep takes the blob once its registration ends or expires.
        guard.settled = true;
        let triggers = self.triggers.get(bucket).cloned().unwrap_or_default();
        let events = Box::new(move |o: &ObjectMeta| {
            event::messages(
                &triggers,
                ObjectEventKind::Created,
                o,
                traceparent.as_deref(),
            )
        });
        let committed = self.store.commit_put(bucket, new, events).await;
        match committed {
            Ok(outcome) => {
                guard.keep();
                self.counted(bucket, ObjectEventKind::Created);
                if let Some(old) = outcome.replaced_blob {
                    self.blobs.remove(bucket, &old).await;
                }
                let mut object = outcome.object;
                Checksums::take_from(&mut object.user_metadata);
                Ok(object)
            }
            // A closed or unreachable store may or may not have committed:
            // the blob and its registration stay; once the registration
            // expires, the sweep removes the blob if nothing refers to it.
            Err(e @ (StoreError::Closed | StoreError::Unavailable(_))) => {
                guard.keep();
                Err(e.into())
            }
            Err(e) => {
                guard.discard().await;
                Err(e.into())
            }
        }
    }

    /// Counts the committed change (the store wakes the triggers' consumers).
    fn counted(&self, bucket: &str, kind: ObjectEventKind) {
        if let Some(metrics) = &self.metrics {
            let kind_label = match kind {
                ObjectEventKind::Created => "created",
                ObjectEventKind::Removed => "removed",
            };
            metrics.object_events.with(&[bucket, kind_label]).inc();
        }
    }

    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, BucketError> {
        Ok(self.head_with_checksums(bucket, key).await?.0)
    }

    /// [`Buckets::head`], with the checksums kept at upload.
    pub async fn head_with_checksums(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, Checksums), BucketError> {
        self.readable_key(bucket, key).await?;
        let mut meta = self
            .store
            .object(bucket, key)
            .await?
            .ok_or_else(|| BucketError::NoSuchKey(key.to_owned()))?;
        let checksums = Checksums::take_from(&mut meta.user_metadata);
        Ok((meta, checksums))
    }

    /// An object's bytes, or the part of them in `range`, whole in memory
    /// (for guests, whose objects a call returns whole; the API and the S3
    /// endpoint stream them with [`Buckets::get_stream`]).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectBytes, BucketError> {
        let got = self.get_stream(bucket, key, range).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(got.content_length()).unwrap_or(0));
        let mut body = got.body;
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(ObjectBytes {
            meta: got.meta,
            bytes: bytes.into(),
            range: got.range,
        })
    }

    /// An object's bytes, or the part of them in `range`, as they are read
    /// from object storage (memory stays bounded whatever the size), with
    /// its metadata and the checksums kept at upload. The body delivers
    /// exactly [`ObjectStream::content_length`] bytes or ends with an error.
    pub async fn get_stream(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectStream, BucketError> {
        // A put or delete may remove the blob between reading the metadata
        // and opening it; then the metadata is read again. Once open, the
        // blob's bytes keep coming whatever removes it (see `Blobs::open`).
        for _ in 0..READ_ATTEMPTS {
            let (meta, checksums) = self.head_with_checksums(bucket, key).await?;
            let range = match range {
                None => None,
                Some(r) => Some(
                    r.resolve(meta.size)
                        .ok_or(BucketError::RangeNotSatisfiable { size: meta.size })?,
                ),
            };
            if let Some(body) = self
                .blobs
                .read_blob(bucket, &meta.blob, range.clone())
                .await?
            {
                let mut got = ObjectStream {
                    body,
                    meta,
                    checksums,
                    range,
                };
                let len = got.content_length();
                got.body = exactly(got.body, len);
                return Ok(got);
            }
        }
        Err(BucketError::Blob(format!(
            "the bytes of `{key}` kept changing while being read, or are missing"
        )))
    }

    /// Removes an object; `false` if there was none.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        traceparent: Option<String>,
    ) -> Result<bool, BucketError> {
        self.readable_key(bucket, key).await?;
        let triggers = self.triggers.get(bucket).cloned().unwrap_or_default();
        let events = Box::new(move |o: &ObjectMeta| {
            event::messages(
                &triggers,
                ObjectEventKind::Removed,
                o,
                traceparent.as_deref(),
            )
        });
        match self.store.commit_delete(bucket, key, events).await? {
            None => Ok(false),
            Some(removed) => {
                self.counted(bucket, ObjectEventKind::Removed);
                self.blobs.remove(bucket, &removed.blob).await;
                Ok(true)
            }
        }
    }

    pub async fn list(&self, bucket: &str, query: ListQuery) -> Result<ListPage, BucketError> {
        self.readable(bucket).await?;
        nimbus_manifest::bucket::check_key_prefix(&query.prefix)
            .map_err(|e| BucketError::Invalid(format!("invalid prefix: {e}")))?;
        if !(1..=MAX_LIST_LIMIT).contains(&query.limit) {
            return Err(BucketError::Invalid(format!(
                "`limit` must be from 1 to {MAX_LIST_LIMIT}"
            )));
        }
        let mut page = self.store.list_objects(bucket, query).await?;
        for object in &mut page.objects {
            Checksums::take_from(&mut object.user_metadata);
        }
        Ok(page)
    }

    /// The sweep at start, before this process serves. With local blobs no
    /// other process writes under this data directory, so every
    /// registration left is an upload cut off by a crash or kill: they all
    /// end, and their blobs go at once. On S3 other nodes may be uploading
    /// now: only this node's own registrations end (a node id runs as one
    /// process at a time, so they were its dead predecessor's), and other
    /// nodes' past [`UPLOAD_BOUND`].
    pub async fn sweep_orphans_at_start(&self) -> Result<usize, BucketError> {
        if self.blobs.is_local() {
            self.store.expire_uploads(0).await?;
        } else {
            let ended = self.store.abandon_uploads_of(&self.uploader).await?;
            if ended > 0 {
                tracing::info!(
                    "ended {ended} upload registrations this node left when it stopped mid-upload"
                );
            }
        }
        self.sweep_orphans(Duration::ZERO).await
    }

    /// Removes blobs older than `grace` that no object refers to and no
    /// upload in flight (on any node sharing the store) is writing: left by
    /// uploads cut off before their commit, or by a crash between a
    /// replacing commit and the old blob's removal. First ends the upload
    /// registrations older than [`UPLOAD_BOUND`] (their nodes died).
    /// Returns how many blobs were removed.
    pub async fn sweep_orphans(&self, grace: Duration) -> Result<usize, BucketError> {
        let bound_ms = UPLOAD_BOUND.as_millis() as u64;
        let expired = self.store.expire_uploads(bound_ms).await?;
        if expired > 0 {
            tracing::warn!(
                "ended {expired} upload registrations older than {} s (their uploads never finished)",
                UPLOAD_BOUND.as_secs()
            );
        }
        // Not only the declared buckets: a bucket deleted by a process
        // that died before removing its blobs is declared nowhere, and its
        // blobs are orphans all the same.
        let mut buckets: BTreeSet<String> = self.buckets.keys().cloned().collect();
        buckets.extend(self.blobs.bucket_names().await?);
        let mut removed = 0;
        for bucket in &buckets {
            removed += self.sweep_bucket(bucket, grace).await?;
        }
        // Multipart parts live apart from the buckets, so the sweep above
        // never takes a live one; abandoned uploads go after a bound.
        self.sweep_uploads(UPLOAD_KEPT).await?;
        Ok(removed)
    }

    /// Removes `bucket`'s blobs older than `grace` that the store calls
    /// orphans, in batches; returns how many.
    async fn sweep_bucket(&self, bucket: &str, grace: Duration) -> Result<usize, BucketError> {
        let mut removed = 0;
        let mut listing = self.blobs.candidates(bucket, grace);
        let mut batch = Vec::new();
        loop {
            let next = listing.next().await.transpose()?;
            let end = next.is_none();
            batch.extend(next);
            if batch.len() >= SWEEP_BATCH || (end && !batch.is_empty()) {
                removed += self.sweep_batch(bucket, std::mem::take(&mut batch)).await?;
            }
            if end {
                break;
            }
        }
        Ok(removed)
    }

    /// Deletes a bucket the version being served does not declare (one a
    /// deployment dropped, whose objects were kept): first its objects and
    /// upload registrations in one store transaction, after which every
    /// blob of the bucket is an orphan by the store's rule, then those
    /// blobs, then (locally) its empty directory. Should the process die in
    /// between, the orphan sweep removes the blobs: it visits every bucket
    /// the storage holds, declared or not. No object events are sent (no
    /// trigger of the version being served watches the bucket).
    pub async fn delete_bucket(&self, bucket: &str) -> Result<DeletedBucket, BucketError> {
        if self.buckets.contains_key(bucket) {
            return Err(BucketError::Declared(bucket.to_owned()));
        }
        // Only a name a bucket may have ever reaches the storage's paths.
        if !is_bucket_name(bucket) {
            return Err(BucketError::NoSuchBucket(bucket.to_owned()));
        }
        let deleted = self
            .store
            .delete_bucket(bucket)
            .await?
            .ok_or_else(|| BucketError::NoSuchBucket(bucket.to_owned()))?;
        let blobs_removed = match self.sweep_bucket(bucket, Duration::ZERO).await {
            Ok(removed) => removed,
            Err(e) => {
                tracing::warn!(
                    bucket,
                    "could not remove the blobs of the deleted bucket (the orphan sweep will): {e}"
                );
                0
            }
        };
        self.blobs.remove_empty_bucket(bucket);
        tracing::info!(
            bucket,
            objects = deleted.objects,
            blobs_removed,
            "deleted the bucket"
        );
        Ok(DeletedBucket {
            objects: deleted.objects,
            bytes: deleted.bytes,
            blobs_removed,
        })
    }

    async fn sweep_batch(
        &self,
        bucket: &str,
        candidates: Vec<blob::Candidate>,
    ) -> Result<usize, BucketError> {
        let names: Vec<String> = candidates.iter().map(|c| c.blob.clone()).collect();
        let orphans: HashSet<String> = self
            .store
            .unreferenced_blobs(bucket, names)
            .await?
            .into_iter()
            .collect();
        let mut removed = 0;
        for candidate in candidates {
            if orphans.contains(&candidate.blob) && self.blobs.remove_candidate(&candidate).await {
                tracing::info!(bucket, blob = %candidate.blob, "removed an orphaned blob");
                removed += 1;
            }
        }
        Ok(removed)
    }
}
