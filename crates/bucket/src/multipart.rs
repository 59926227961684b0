//! Multipart uploads: an upload is described and its parts kept in the
//! staging area of object storage (`staging`), each part durable before
//! it is acknowledged and still there after a restart; completing one
//! makes the object's blob of the parts where they lie (a composite blob,
//! `composite`: linked or copied server-side, never read through Nimbus)
//! and commits it as any upload, so its metadata, limits and object events
//! are those of any other upload. Parts are streamed in, so memory stays
//! bounded whatever the sizes.

use crate::composite::{self, Adopted};
use crate::staging::Staged;
use crate::{BucketError, Buckets, InFlight, PutOptions, UploadError, Written, meta};
use bytes::Bytes;
use nimbus_store::{NewObject, ObjectMeta};
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
pub(crate) const DESCRIPTION: &str = "upload.json";

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

/// A part's files: its bytes under `NUMBER.SUFFIX` (the suffix fresh, so
/// a part sent again is a new file), written as they arrive, then, once
/// they are durable and checked, an empty marker `NUMBER.ETAG.SUFFIX.SIZE`
/// that makes the part exist, so a completion picks the one whose ETag it
/// names. (Before parts were streamed, a part was one file
/// `NUMBER.ETAG.SUFFIX` holding its bytes; such parts are still read.)
fn part_data_name(number: u32, suffix: &str) -> String {
    format!("{number:05}.{suffix}")
}

fn part_marker_name(number: u32, etag: &str, suffix: &str, size: u64) -> String {
    format!("{number:05}.{etag}.{suffix}.{size}")
}

/// A part found in the staging area.
struct StagedPart {
    part: Part,
    /// Its time-ordered suffix: of a part sent twice, the later is greater.
    suffix: String,
    /// The file holding its bytes.
    data: String,
}

fn parse_part(file: &Staged) -> Option<StagedPart> {
    let fields: Vec<&str> = file.name.split('.').collect();
    let (number, etag, suffix, size, data) = match fields[..] {
        [number, etag, suffix, size] => (
            number,
            etag,
            suffix,
            size.parse().ok()?,
            part_data_name(number.parse().ok()?, suffix),
        ),
        [number, etag, suffix] => (number, etag, suffix, file.size, file.name.clone()),
        _ => return None,
    };
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(etag) || !hex(suffix) {
        return None;
    }
    Some(StagedPart {
        part: Part {
            number: number.parse().ok()?,
            etag: etag.to_owned(),
            size,
            modified_ms: ms(file.modified),
        },
        suffix: suffix.to_owned(),
        data,
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
        self.upload(bucket, key, id).await?;
        let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        Ok(self
            .put_part_stream(bucket, id, number, body, |_, _| Ok(()))
            .await
            .map_err(BucketError::from)?)
    }

    /// Stores part `number` of upload `id` (one [`Buckets::upload`] found)
    /// from `body`, written as it arrives and refused once it passes the
    /// bucket's object limit. Once its bytes are durable, `check` is given
    /// the body and what was written, and may refuse the part; only then
    /// does the part exist. A part refused leaves nothing that a listing or
    /// completion sees.
    pub async fn put_part_stream<S, E>(
        &self,
        bucket: &str,
        id: &str,
        number: u32,
        mut body: S,
        check: impl FnOnce(S, &Written) -> Result<(), E>,
    ) -> Result<Part, UploadError<E>>
    where
        S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    {
        if !(1..=MAX_PART_NUMBER).contains(&number) || !is_upload_id(id) {
            return Err(BucketError::Invalid(format!("no part {number} of upload `{id}`")).into());
        }
        let limit = self.bucket(bucket)?.max_object_bytes;
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let data = part_data_name(number, &suffix);
        let too_large = |size| BucketError::TooLarge {
            bucket: bucket.to_owned(),
            size,
            limit,
        };
        let target = self.blobs.staged_target(id, &data);
        let written = match self
            .blobs
            .write_stream(target, &mut body, limit, true, too_large)
            .await
        {
            Ok(written) => written,
            Err(e) => {
                self.blobs.remove_staged_file(id, &data).await;
                return Err(e);
            }
        };
        if let Err(e) = check(body, &written) {
            self.blobs.remove_staged_file(id, &data).await;
            return Err(UploadError::Body(e));
        }
        let etag = meta::hex(&written.md5.expect("the MD5 was asked for"));
        let marker = part_marker_name(number, &etag, &suffix, written.size);
        if let Err(e) = self.blobs.write_staged(id, &marker, Bytes::new()).await {
            self.blobs.remove_staged_file(id, &data).await;
            return Err(e.into());
        }
        Ok(Part {
            number,
            etag,
            size: written.size,
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
        for staged in self.staged_parts(id).await? {
            parts.insert(staged.part.number, staged.part);
        }
        Ok(parts.into_values().collect())
    }

    async fn staged_parts(&self, id: &str) -> Result<Vec<StagedPart>, MultipartError> {
        let files = self.blobs.list_staged(id).await?;
        let mut parts: Vec<StagedPart> = files
            .iter()
            .filter(|f| f.name != DESCRIPTION)
            .filter_map(parse_part)
            .collect();
        parts.sort_by(|a, b| (a.part.number, &a.suffix).cmp(&(b.part.number, &b.suffix)));
        Ok(parts)
    }

    /// Puts the parts named (number and ETag, in ascending order) together
    /// into the object, a composite blob of them, and commits it with the
    /// multipart ETag; then the upload is gone. A crash before the commit
    /// leaves the upload whole (and the composite to the sweep); after it,
    /// the object, and the upload until its removal or the upload sweep.
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
        let mut picked: Vec<&StagedPart> = Vec::with_capacity(chosen.len());
        for (number, etag) in chosen {
            let etag = etag.trim_matches('"').to_ascii_lowercase();
            let part = staged
                .iter()
                .rev()
                .find(|p| p.part.number == *number && p.part.etag == etag)
                .ok_or(MultipartError::InvalidPart(*number))?;
            picked.push(part);
        }
        for staged in &picked[..picked.len() - 1] {
            if staged.part.size < MIN_PART_BYTES {
                return Err(MultipartError::EntityTooSmall {
                    number: staged.part.number,
                    size: staged.part.size,
                });
            }
        }
        let size: u64 = picked.iter().map(|p| p.part.size).sum();
        if size > limit {
            return Err(BucketError::TooLarge {
                bucket: bucket.to_owned(),
                size,
                limit,
            }
            .into());
        }
        let etag = meta::multipart_etag(picked.iter().map(|p| p.part.etag.as_str()))
            .ok_or(MultipartError::InvalidPart(0))?;
        let content_type = meta::content_type(upload.content_type)?;
        meta::check_user_metadata(&upload.user_metadata)?;
        // The object's blob is made of the staged parts themselves (see
        // `composite`): no byte is read or written again. Registered first,
        // as any upload's blob, so no sweep takes it while it is made.
        let blob = composite::new_name(picked.len());
        self.store
            .begin_upload(bucket, &blob, &self.uploader)
            .await
            .map_err(BucketError::from)?;
        let guard = InFlight::new(self, bucket, &blob);
        let parts: Vec<(String, u64)> = picked
            .iter()
            .map(|p| (p.data.clone(), p.part.size))
            .collect();
        match self.blobs.adopt_parts(bucket, &blob, id, &parts).await {
            Ok(Adopted::Whole) => {}
            Ok(Adopted::Missing(position)) => {
                guard.discard().await;
                return Err(MultipartError::InvalidPart(
                    picked[position - 1].part.number,
                ));
            }
            Err(e) => {
                guard.discard().await;
                return Err(e.into());
            }
        }
        let new = NewObject {
            key: key.to_owned(),
            size,
            etag,
            content_type,
            user_metadata: upload.user_metadata,
            blob,
        };
        // Should this fail, the upload is still there, whole: the links or
        // copies went to the object's blob, never out of the staging area.
        let object = self.commit(bucket, new, guard, traceparent).await?;
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
