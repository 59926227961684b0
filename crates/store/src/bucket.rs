//! Object metadata: one row per visible object (size, ETag, content type,
//! user metadata, the blob holding its bytes), committed in one transaction
//! with the object events it implies, each with a sequencer that increases
//! per key. The bytes themselves live elsewhere (`nimbus-bucket`).

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
    /// Makes `object` visible in `bucket`, replacing any object under its
    /// key, and sends `events(&object)` in the same transaction.
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

    /// The blobs among `blobs` no object of `bucket` refers to.
    async fn unreferenced_blobs(
        &self,
        bucket: &str,
        blobs: Vec<String>,
    ) -> StoreResult<Vec<String>>;
}
