//! Object metadata: one row per visible object (size, ETag, content type,
//! user metadata, the blob holding its bytes), committed in one transaction
//! with the object events it implies, each with a sequencer that increases
//! per key; and the registry of uploads in flight, which the orphan sweep of
//! any node respects. The bytes themselves live elsewhere (`nimbus-bucket`).

use crate::{SendMessage, StoreResult, Timestamp};
use std::collections::BTreeMap;

/// What an object is, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    /// `x-nimbus-meta-*` values, by lower-case name.
    pub user_metadata: BTreeMap<String, String>,
    /// Where the bytes are, relative to the bucket's blob storage.
    pub blob: String,
    /// When the commit that made it visible happened (the store's clock).
    pub created_at: Timestamp,
    /// The sequencer of the event that made it visible.
    pub sequencer: u64,
}

/// An object to make visible; the store fills in the time and sequencer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    pub blob: String,
}

/// Builds the event messages of a change once its sequencer is known:
/// `(internal queue, message)` pairs, sent in the change's transaction.
pub type EventsFor = Box<dyn FnOnce(&ObjectMeta) -> Vec<(String, SendMessage)> + Send>;

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub object: ObjectMeta,
    /// The blob of the object it replaced, now unreferenced.
    pub replaced_blob: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// With a delimiter: the distinct key prefixes up to and including it.
    pub common_prefixes: Vec<String>,
    /// Give as `start_after` for the next page; `None` on the last page.
    pub next_start_after: Option<String>,
}

impl ListPage {
    /// The greatest key or common prefix in the page: where the next page
    /// starts after.
    pub fn last_entry(&self) -> String {
        let object = self.objects.last().map(|o| o.key.as_str());
        let common = self.common_prefixes.last().map(String::as_str);
        object.max(common).unwrap_or_default().to_owned()
    }
}

/// The smallest byte string after every string that starts with `prefix`
/// (`None`: there is none, every string is below it); listings use it to
/// bound a prefix and to skip past a common prefix.
pub fn key_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = prefix.to_vec();
    while let Some(last) = bytes.pop() {
        if last < u8::MAX {
            bytes.push(last + 1);
            return Some(bytes);
        }
    }
    None
}

/// The backend-independent part of a listing (S3's ListObjectsV2 rules):
/// which key range to fetch next and what each fetched object adds to the
/// page. A backend loops `while let Some(fetch) = listing.next_fetch()`,
/// reads the objects with `fetch.from <= key < fetch.end` in key order (at
/// most `fetch.limit`), hands them to [`Listing::take`], and ends with
/// [`Listing::finish`].
#[derive(Debug)]
pub struct Listing {
    prefix: String,
    delimiter: Option<String>,
    after: Option<Vec<u8>>,
    limit: usize,
    /// Keys from here (inclusive) are still to be read.
    from: Vec<u8>,
    /// Keys from here on are past the prefix.
    end: Option<Vec<u8>>,
    emitted: usize,
    page: ListPage,
    done: bool,
}

/// One range of keys to read for a [`Listing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch<'a> {
    pub from: &'a [u8],
    pub end: Option<&'a [u8]>,
    pub limit: usize,
}

impl Listing {
    pub fn new(query: &ListQuery) -> Self {
        let prefix = query.prefix.as_bytes();
        let after = query.start_after.as_deref().map(str::as_bytes);
        // Keys from just after `start_after`, or from the prefix.
        let from = match after {
            Some(a) if a >= prefix => [a, &[0u8]].concat(),
            _ => prefix.to_vec(),
        };
        Listing {
            prefix: query.prefix.clone(),
            delimiter: query.delimiter.clone().filter(|d| !d.is_empty()),
            after: after.map(<[u8]>::to_vec),
            limit: query.limit.max(1) as usize,
            from,
            end: key_successor(prefix),
            emitted: 0,
            page: ListPage::default(),
            done: false,
        }
    }

    /// What to read next; `None` once the page is complete. One row more
    /// than the page still holds is asked for, to know if another follows.
    pub fn next_fetch(&self) -> Option<Fetch<'_>> {
        (!self.done).then(|| Fetch {
            from: &self.from,
            end: self.end.as_deref(),
            limit: self.limit - self.emitted + 1,
        })
    }

    /// Takes the objects the last fetch read, in key order.
    pub fn take(&mut self, objects: Vec<ObjectMeta>) {
        if objects.is_empty() {
            self.done = true;
            return;
        }
        for object in objects {
            let rest = &object.key[self.prefix.len()..];
            let common = self.delimiter.as_deref().and_then(|d| {
                rest.find(d)
                    .map(|at| object.key[..self.prefix.len() + at + d.len()].to_owned())
            });
            let entry = common.as_deref().unwrap_or(&object.key).to_owned();
            let skip_to = common.as_deref().and_then(|c| key_successor(c.as_bytes()));
            // A common prefix at or before `start_after` was on an earlier page.
            let seen = common
                .as_deref()
                .is_some_and(|c| self.after.as_deref().is_some_and(|a| c.as_bytes() <= a));
            let is_common = common.is_some();
            if !seen {
                if self.emitted == self.limit {
                    self.page.next_start_after = Some(self.page.last_entry());
                    self.done = true;
                    return;
                }
                self.emitted += 1;
                match common {
                    Some(c) => self.page.common_prefixes.push(c),
                    None => self.page.objects.push(object),
                }
            }
            if let Some(next) = skip_to {
                // Past every key under this common prefix: read on from there.
                self.from = next;
                return;
            } else if is_common {
                self.done = true;
                return;
            }
            self.from = [entry.as_bytes(), &[0u8]].concat();
        }
    }

    pub fn finish(self) -> ListPage {
        self.page
    }
}

/// What deleting a bucket's metadata removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketDeleted {
    pub objects: u64,
    /// The objects' sizes added up.
    pub bytes: u64,
    /// Upload registrations ended (uploads in flight, whose commits now fail).
    pub uploads: u64,
}

/// A listing request, as S3's ListObjectsV2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys (and common prefixes) after this one.
    pub start_after: Option<String>,
    /// Objects plus common prefixes in the page (at least 1).
    pub limit: u32,
}

#[async_trait::async_trait]
pub trait BucketStore: Send + Sync {
    /// Registers the upload of `blob` into `bucket`, begun now by the
    /// store's clock. Called before the blob's bytes are written, so a blob
    /// that exists was registered first: while the registration lasts no
    /// sweep, on any node sharing the store, takes the blob for an orphan.
    /// [`BucketStore::commit_put`] ends it in the commit's transaction,
    /// [`BucketStore::abandon_upload`] when the upload is given up on, and
    /// [`BucketStore::expire_uploads`] when it is older than a bound, or
    /// [`BucketStore::abandon_uploads_of`] when `uploader` (the node) starts
    /// again.
    async fn begin_upload(&self, bucket: &str, blob: &str, uploader: &str) -> StoreResult<()>;

    /// Ends the registration of an upload given up on; none is not an error.
    async fn abandon_upload(&self, bucket: &str, blob: &str) -> StoreResult<()>;

    /// Ends every upload registration begun `older_than_ms` or more ago by
    /// the store's clock (its node died, or it outlived the bound; 0 ends
    /// them all): its blob may then be swept, and its commit fails. Returns
    /// how many ended.
    async fn expire_uploads(&self, older_than_ms: u64) -> StoreResult<u64>;

    /// Ends every upload registration `uploader` began: called by a node as
    /// it starts, when any such registration is its dead predecessor's (a
    /// node id is one process at a time), so their blobs can be swept at
    /// once instead of after the bound. Returns how many ended.
    async fn abandon_uploads_of(&self, uploader: &str) -> StoreResult<u64>;

    /// Makes `object` visible in `bucket`, replacing any object under its
    /// key, and sends `events(&object)` in the same transaction, which also
    /// ends the registration of the upload of `object.blob`. Without that
    /// registration (never begun, abandoned or expired) nothing changes and
    /// the result is [`StoreError::UploadNotRegistered`]: a blob the sweep
    /// may have removed is never referenced.
    ///
    /// [`StoreError::UploadNotRegistered`]: crate::StoreError::UploadNotRegistered
    async fn commit_put(
        &self,
        bucket: &str,
        object: NewObject,
        events: EventsFor,
    ) -> StoreResult<PutOutcome>;

    /// Removes the object under `key` and sends `events(&removed)` (the
    /// removed object with the removal's sequencer) in the same transaction;
    /// `None` (and no events) if there was none.
    async fn commit_delete(
        &self,
        bucket: &str,
        key: &str,
        events: EventsFor,
    ) -> StoreResult<Option<ObjectMeta>>;

    async fn object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectMeta>>;

    /// Keys in byte order, grouped by `delimiter` after `prefix`.
    async fn list_objects(&self, bucket: &str, query: ListQuery) -> StoreResult<ListPage>;

    /// The blobs among `blobs` that no object of `bucket` refers to and no
    /// registered upload is writing: the orphans.
    async fn unreferenced_blobs(
        &self,
        bucket: &str,
        blobs: Vec<String>,
    ) -> StoreResult<Vec<String>>;

    /// Deletes every object of `bucket` and ends every upload registration
    /// in it, in one transaction and without object events, so that every
    /// blob of the bucket is then an orphan by
    /// [`BucketStore::unreferenced_blobs`] (a commit of an upload that was
    /// in flight fails with `UploadNotRegistered`). `None` if the bucket
    /// held no object and no upload.
    async fn delete_bucket(&self, bucket: &str) -> StoreResult<Option<BucketDeleted>>;

    /// The buckets holding at least one object, in byte order: the ones
    /// being used and those a deployment dropped and kept.
    async fn buckets_with_objects(&self) -> StoreResult<Vec<String>>;
}
