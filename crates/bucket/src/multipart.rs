//! Multipart uploads: an upload is described and its parts kept in the
//! staging area of object storage (`staging`), each part durable before
//! it is acknowledged and still there after a restart; completing one puts
//! the parts together and stores the object through [`Buckets::put`], so
//! its metadata, limits and object events are those of any other upload.
//! Parts are held in memory while they are put together (at most the
//! bucket's `max_object_bytes`).

use crate::staging::Staged;
use crate::{BucketError, Buckets, PutOptions, meta};
use bytes::{Bytes, BytesMut};
use nimbus_store::ObjectMeta;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// Highest part number, as S3.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest part but the last, as S3.
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// How long an upload may stay unfinished before the sweep removes it and
/// its parts: long enough for any real transfer, bounded so an abandoned
/// upload does not keep its bytes for ever.
pub const UPLOAD_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The file describing an upload.
const DESCRIPTION: &str = "upload.json";

#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error("upload `{0}` does not exist (it was completed, aborted or never begun)")]
    NoSuchUpload(String),
    #[error("part {0} was not uploaded, or its ETag is not the one given")]
    InvalidPart(u32),
    #[error("the parts must be listed in ascending order of their numbers")]
    InvalidPartOrder,
    #[error(
        "part {number} is {size} bytes; every part but the last needs at least {MIN_PART_BYTES}"
    )]
    EntityTooSmall { number: u32, size: u64 },
    #[error("part numbers are from 1 to {MAX_PART_NUMBER}")]
    InvalidPartNumber,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    /// When it began, in milliseconds since the epoch.
    pub initiated_ms: u64,
}

/// A part as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    /// The hex MD5 of its bytes.
    pub etag: String,
    pub size: u64,
    pub modified_ms: u64,
}

/// Whether `id` is one [`Buckets::create_upload`] could have made (so a
/// hostile id never reaches a path).
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// When upload `id` began: its UUIDv7's time.
fn initiated(id: &str) -> Option<SystemTime> {
    let (secs, nanos) = uuid::Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

fn ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A part's file name: its number, MD5 and a fresh suffix, so a part sent
/// again is a new file and a completion picks the one whose ETag it names.
fn part_name(number: u32, etag: &str) -> String {
    format!("{number:05}.{etag}.{}", uuid::Uuid::now_v7().simple())
}

fn parse_part(file: &Staged) -> Option<Part> {
    let mut fields = file.name.split('.');
    let number = fields.next()?.parse().ok()?;
    let etag = fields.next()?.to_owned();
    fields.next()?;
    Some(Part {
        number,
        etag,
        size: file.size,
        modified_ms: ms(file.modified),
    })
}

impl Buckets {
    /// Begins an upload of `key` into `bucket` with the object's content
    /// type and user metadata (checked now, as a put checks them).
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        options: PutOptions,
    ) -> Result<Upload, MultipartError> {
        self.checked(bucket, key)?;
        let content_type = meta::content_type(options.content_type.clone())?;
        meta::check_user_metadata(&options.user_metadata)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let upload = Upload {
            initiated_ms: initiated(&id).map(ms).unwrap_or_default(),
            id,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type: Some(content_type),
            user_metadata: options.user_metadata,
        };
        let description = serde_json::json!({
            "bucket": upload.bucket,
            "key": upload.key,
            "content_type": upload.content_type,
            "user_metadata": upload.user_metadata,
        });
        let bytes = Bytes::from(serde_json::to_vec(&description).map_err(BucketError::blob)?);
        self.blobs
            .write_staged(&upload.id, DESCRIPTION, bytes)
            .await?;
        Ok(upload)
    }

    /// Upload `id`, if it is one of `key` in `bucket`.
    pub async fn upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Upload, MultipartError> {
        let missing = || MultipartError::NoSuchUpload(id.to_owned());
        if !is_upload_id(id) {
            return Err(missing());
        }
        let upload = self.described(id).await?.ok_or_else(missing)?;
        if upload.bucket != bucket || upload.key != key {
            return Err(missing());
        }
        Ok(upload)
    }

    /// Upload `id` as its description says; `None` if it has none (gone,
    /// or not yet written).
    async fn described(&self, id: &str) -> Result<Option<Upload>, MultipartError> {
        let Some(bytes) = self.blobs.read_staged(id, DESCRIPTION).await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(BucketError::blob)?;
        let text = |name: &str| value[name].as_str().map(str::to_owned);
        // A description without them names no upload anyone can reach.
        let (Some(bucket), Some(key)) = (text("bucket"), text("key")) else {
            return Ok(None);
        };
        let user_metadata = value["user_metadata"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Upload {
            id: id.to_owned(),
            bucket,
            key,
            content_type: text("content_type"),
            user_metadata,
            initiated_ms: initiated(id).map(ms).unwrap_or_default(),
        }))
    }

    /// The uploads in progress into `bucket` whose keys start with
    /// `prefix`, by key and then by when they began. Each upload's
    /// description is read, so this costs a read per upload in the staging
    /// area (uploads are few, and swept after [`UPLOAD_KEPT`]).
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<Upload>, MultipartError> {
        self.bucket(bucket)?;
        let mut found = Vec::new();
        for id in self.blobs.staged_uploads().await? {
            if !is_upload_id(&id) {
                continue;
            }
            // An upload completed or aborted meanwhile is simply not there.
            let Some(upload) = self.described(&id).await? else {
                continue;
            };
            if upload.bucket == bucket && upload.key.starts_with(prefix) {
                found.push(upload);
            }
        }
        // UUIDv7 ids sort by when the uploads began.
        found.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        Ok(found)
    }

    /// Stores part `number` of upload `id`; it is durable when this
    /// returns. A part sent again replaces the earlier one (the
    /// completion names which by its ETag).
    pub async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        number: u32,
        bytes: Bytes,
    ) -> Result<Part, MultipartError> {
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(MultipartError::InvalidPartNumber);
        }
        let limit = self.bucket(bucket)?.max_object_bytes;
        let size = bytes.len() as u64;
        if size > limit {
            return Err(BucketError::TooLarge {
                bucket: bucket.to_owned(),
                size,
                limit,
            }
            .into());
        }
        self.upload(bucket, key, id).await?;
        let etag = meta::etag(&bytes);
        self.blobs
            .write_staged(id, &part_name(number, &etag), bytes)
            .await?;
        Ok(Part {
            number,
            etag,
            size,
            modified_ms: ms(SystemTime::now()),
        })
    }

    /// The parts of upload `id`, by number; of a part sent more than once,
    /// the last.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Vec<Part>, MultipartError> {
        self.upload(bucket, key, id).await?;
        let mut parts: BTreeMap<u32, Part> = BTreeMap::new();
        // Names sort by number, then by their time-ordered suffix.
        for part in self.staged_parts(id).await? {
            parts.insert(part.number, part);
        }
        Ok(parts.into_values().collect())
    }

    async fn staged_parts(&self, id: &str) -> Result<Vec<Part>, MultipartError> {
        let files = self.blobs.list_staged(id).await?;
        let mut parts: Vec<(String, Part)> = files
            .iter()
            .filter(|f| f.name != DESCRIPTION)
            .filter_map(|f| Some((f.name.rsplit('.').next()?.to_owned(), parse_part(f)?)))
            .collect();
        parts.sort_by(|(a_suffix, a), (b_suffix, b)| {
            (a.number, a_suffix).cmp(&(b.number, b_suffix))
        });
        Ok(parts.into_iter().map(|(_, p)| p).collect())
    }

    /// Puts the parts named (number and ETag, in ascending order) together
    /// into the object and stores it through [`Buckets::put`] with the
    /// multipart ETag; then the upload is gone.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        chosen: &[(u32, String)],
        traceparent: Option<String>,
    ) -> Result<ObjectMeta, MultipartError> {
        let upload = self.upload(bucket, key, id).await?;
        let limit = self.bucket(bucket)?.max_object_bytes;
        if chosen.is_empty() {
            return Err(MultipartError::InvalidPart(0));
        }
        if chosen.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(MultipartError::InvalidPartOrder);
        }
        let staged = self.staged_parts(id).await?;
        let files = self.blobs.list_staged(id).await?;
        let mut picked: Vec<(String, Part)> = Vec::with_capacity(chosen.len());
        for (number, etag) in chosen {
            let etag = etag.trim_matches('"').to_ascii_lowercase();
            let part = staged
                .iter()
                .rev()
                .find(|p| p.number == *number && p.etag == etag)
                .ok_or(MultipartError::InvalidPart(*number))?;
            let name = files
                .iter()
                .rev()
                .find(|f| parse_part(f).is_some_and(|p| p.number == *number && p.etag == etag))
                .map(|f| f.name.clone())
                .ok_or(MultipartError::InvalidPart(*number))?;
            picked.push((name, part.clone()));
        }
        for (_, part) in &picked[..picked.len() - 1] {
            if part.size < MIN_PART_BYTES {
                return Err(MultipartError::EntityTooSmall {
                    number: part.number,
                    size: part.size,
                });
            }
        }
        let size: u64 = picked.iter().map(|(_, p)| p.size).sum();
        if size > limit {
            return Err(BucketError::TooLarge {
                bucket: bucket.to_owned(),
                size,
                limit,
            }
            .into());
        }
        let mut bytes = BytesMut::with_capacity(size as usize);
        for (name, part) in &picked {
            let read = self
                .blobs
                .read_staged(id, name)
                .await?
                .ok_or(MultipartError::InvalidPart(part.number))?;
            bytes.extend_from_slice(&read);
        }
        let etag = meta::multipart_etag(picked.iter().map(|(_, p)| p.etag.as_str()))
            .ok_or(MultipartError::InvalidPart(0))?;
        let options = PutOptions {
            content_type: upload.content_type,
            user_metadata: upload.user_metadata,
            traceparent,
            etag: Some(etag),
        };
        let object = self.put(bucket, key, bytes.freeze(), options).await?;
        if let Err(e) = self.blobs.remove_staged(id).await {
            tracing::warn!(
                upload = id,
                "could not remove a completed upload's parts (the sweep will): {e}"
            );
        }
        Ok(object)
    }

    /// Gives upload `id` up: its parts go.
    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<(), MultipartError> {
        self.upload(bucket, key, id).await?;
        self.blobs.remove_staged(id).await?;
        Ok(())
    }

    /// Removes the uploads begun more than `kept` ago (abandoned, or whose
    /// removal after completing failed), with their parts; returns how many.
    pub async fn sweep_uploads(&self, kept: Duration) -> Result<usize, BucketError> {
        let now = SystemTime::now();
        let mut removed = 0;
        for id in self.blobs.staged_uploads().await? {
            // Anything else there is not ours to judge.
            if !is_upload_id(&id) {
                continue;
            }
            let old =
                initiated(&id).is_some_and(|at| now.duration_since(at).unwrap_or_default() >= kept);
            if old && self.blobs.remove_staged(&id).await? {
                tracing::info!(upload = %id, "removed an unfinished multipart upload");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A part number as given by a client.
pub fn part_number(given: i32) -> Result<u32, MultipartError> {
    u32::try_from(given)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or(MultipartError::InvalidPartNumber)
}
