//! Blob I/O through `object_store`, on the local filesystem under the data
//! directory or in an S3 bucket shared by every node. Every upload goes to
//! a fresh name, streamed (`write`): locally a create-only file, on S3 a
//! create-only put or, past one part, a multipart upload; it is durable
//! when the write returns (locally the file and its directory are fsynced;
//! S3 acknowledges a PUT or a completion only once stored), and is only
//! then referenced by metadata. A completed multipart upload's blob is a
//! composite of its parts (`composite`). Reads (`read_blob`) stream, ranged
//! or whole, and keep delivering what they opened whatever removes the
//! blob meanwhile. Blobs written but never referenced are orphans;
//! `candidates` lists the sweep's suspects, a composite as one.

use crate::s3::S3Config;
use crate::write::Target;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt as _};
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Bytes of one local file read (a blocking call off the runtime's
/// threads): `object_store`'s own slices of 8 KiB would make a 192 MiB read
/// 24,576 of them.
pub(crate) const LOCAL_READ_BYTES: usize = 1 << 20;

/// A blob's bytes as they are read.
pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, crate::BucketError>>;

/// Where a bucket's bytes live.
pub(crate) struct Blobs {
    store: Arc<dyn ObjectStore>,
    kind: Kind,
    /// Clean-ups of writes whose callers went away mid-write.
    cleanups: Cleanups,
}

/// Clean-ups of writes given up by being dropped (a client gone mid-upload,
/// a request cancelled): a drop cannot wait, so each runs in a task of its
/// own, kept here so that [`Cleanups::settled`] can wait for them.
#[derive(Default)]
pub(crate) struct Cleanups {
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl Cleanups {
    /// Runs `cleanup` in a task of its own. Without a runtime (the process
    /// is ending) it does not run: the orphan sweep, or for an S3 multipart
    /// upload the bucket's lifecycle rule, is left to remove what it would
    /// have.
    pub(crate) fn spawn(&self, cleanup: impl Future<Output = ()> + Send + 'static) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Those ended are reaped as others begin, so the set holds only the
        // clean-ups still running.
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(cleanup, &runtime);
    }

    /// Waits for every clean-up begun so far to end.
    pub(crate) async fn settled(&self) {
        let mut running =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        while running.join_next().await.is_some() {}
    }
}

enum Kind {
    /// `ROOT/BUCKET/BLOB` on this machine.
    Local { root: PathBuf },
    /// `PREFIX/BUCKET/BLOB` in an S3 bucket.
    S3 {
        location: crate::S3Location,
        /// Where, for messages.
        describe: String,
    },
}

/// A blob the sweep may remove if nothing refers to it.
pub(crate) struct Candidate {
    /// The blob's name, as metadata and the upload registry know it.
    pub blob: String,
    at: Removal,
}

enum Removal {
    /// A local file: a blob (perhaps cut off mid-write), or a staging file
    /// `LocalFileSystem` was writing when it was cut off (`BLOB#N`, which
    /// its listing hides; blobs were written through it before uploads
    /// were streamed).
    File(PathBuf),
    /// A local composite blob's folder.
    Folder(PathBuf),
    Object(BlobPath),
    /// A composite blob's folder on S3, every object under it.
    Composite(BlobPath),
}

pub(crate) fn blob_error(e: impl std::fmt::Display) -> crate::BucketError {
    crate::BucketError::Blob(one_line(e))
}

/// An error on one line: S3 services answer with XML bodies over several,
/// which `object_store` quotes, and a log line or a startup error is one.
pub(crate) fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Blobs {
    pub(crate) fn local(root: PathBuf) -> Result<Self, crate::BucketError> {
        std::fs::create_dir_all(&root).map_err(blob_error)?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(blob_error)?;
        Ok(Blobs {
            store: Arc::new(fs),
            kind: Kind::Local { root },
            cleanups: Cleanups::default(),
        })
    }

    pub(crate) fn s3(config: &S3Config) -> Result<Self, crate::BucketError> {
        Ok(Blobs {
            store: Arc::new(config.build()?),
            kind: Kind::S3 {
                location: config.location.clone(),
                describe: config.describe(),
            },
            cleanups: Cleanups::default(),
        })
    }

    pub(crate) fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// The storage, for reads that outlive the call that began them.
    pub(crate) fn shared_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub(crate) fn cleanups(&self) -> &Cleanups {
        &self.cleanups
    }

    /// The directory the blobs are under, when they are on this machine.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        match &self.kind {
            Kind::Local { root } => Some(root),
            Kind::S3 { .. } => None,
        }
    }

    /// The prefix everything is under on S3 (`None` for the bucket's root,
    /// or locally).
    pub(crate) fn root_prefix(&self) -> Option<BlobPath> {
        match &self.kind {
            Kind::Local { .. } => None,
            Kind::S3 { location, .. } => location.root_path(),
        }
    }

    /// Whether the blobs are on this machine (so only this process writes
    /// them).
    pub(crate) fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }

    /// Where the blobs are, for messages (never a credential).
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Local { root } => root.display().to_string(),
            Kind::S3 { describe, .. } => describe.clone(),
        }
    }

    fn bucket_path(&self, bucket: &str) -> BlobPath {
        match &self.kind {
            Kind::Local { .. } => BlobPath::from_iter([bucket]),
            Kind::S3 { location, .. } => location.bucket_path(bucket),
        }
    }

    pub(crate) fn location(&self, bucket: &str, blob: &str) -> BlobPath {
        self.bucket_path(bucket).child(blob)
    }

    /// Makes sure the blobs can be reached: locally, creates `bucket`'s
    /// directory and makes its entry durable, so a blob fsynced in it later
    /// cannot vanish with the directory on power loss; on S3, lists the
    /// bucket's blobs once, which fails at once on a wrong bucket, endpoint
    /// or credentials.
    pub(crate) async fn prepare(&self, bucket: &str) -> Result<(), crate::BucketError> {
        match &self.kind {
            Kind::Local { root } => prepare_dir(root, bucket),
            Kind::S3 { describe, .. } => {
                let prefix = self.bucket_path(bucket);
                let mut listing = self.store.list(Some(&prefix));
                match listing.next().await {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(crate::BucketError::Blob(format!(
                        "cannot list {describe}: {}",
                        one_line(e)
                    ))),
                }
            }
        }
    }

    /// A new blob name, unique and never reused.
    pub(crate) fn new_name() -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }

    /// Whether `name` is one [`Blobs::new_name`] could have made: 32
    /// lower-case hex digits.
    pub(crate) fn is_blob_name(name: &str) -> bool {
        name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// Where a streamed write of `blob` goes: locally the file, fsynced
    /// with the bucket's folder.
    pub(crate) fn blob_target(&self, bucket: &str, blob: &str) -> Target {
        Target {
            at: self.location(bucket, blob),
            local: match &self.kind {
                Kind::Local { root } => {
                    let dir = root.join(bucket);
                    Some((dir.join(blob), dir))
                }
                Kind::S3 { .. } => None,
            },
        }
    }

    /// Writes `bytes` under `blob`, which must not exist, and makes them
    /// durable.
    #[cfg(test)]
    pub(crate) async fn write(
        &self,
        bucket: &str,
        blob: &str,
        bytes: Bytes,
    ) -> Result<(), crate::BucketError> {
        let mut body = futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]);
        self.write_stream(
            self.blob_target(bucket, blob),
            &mut body,
            u64::MAX,
            false,
            |_| unreachable!("no limit"),
        )
        .await?;
        Ok(())
    }

    /// The bytes of `blob` in `range` (all of them without one) as they are
    /// read; `None` if the blob is gone (its object was replaced or removed
    /// meanwhile).
    pub(crate) async fn read_blob(
        &self,
        bucket: &str,
        blob: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, crate::BucketError> {
        match crate::composite::parts_of(blob) {
            Some(parts) => self.open_composite(bucket, blob, parts, range).await,
            None => self.open(&self.location(bucket, blob), range).await,
        }
    }

    /// Opens `at`. Once open, the stream delivers the bytes it opened even
    /// if the blob is removed meanwhile (a put replacing its object, a
    /// delete, the sweep): locally `object_store` has opened the file by
    /// the time `get_opts` returns, and an open file outlives its unlink;
    /// on S3 the GET's response is already streaming, and should it be cut
    /// off, `object_store` asks again for the rest only of the same ETag, so
    /// a blob removed by then fails the stream instead of mixing in other
    /// bytes (blob names are never reused anyway).
    async fn open(
        &self,
        at: &BlobPath,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, crate::BucketError> {
        open_at(self.store.as_ref(), at, range).await
    }

    /// The bytes of `blob` in `range` (all of them without one); `None` if
    /// the blob is gone.
    #[cfg(test)]
    pub(crate) async fn read(
        &self,
        bucket: &str,
        blob: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<Bytes>, crate::BucketError> {
        let Some(body) = self.read_blob(bucket, blob, range).await? else {
            return Ok(None);
        };
        let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(body).await?;
        Ok(Some(chunks.concat().into()))
    }

    /// Removes `blob` (every part of a composite one); one already gone is
    /// not an error.
    pub(crate) async fn remove(&self, bucket: &str, blob: &str) {
        let removed = match crate::composite::parts_of(blob) {
            Some(_) => self.remove_composite(bucket, blob).await,
            None => match self.store.delete(&self.location(bucket, blob)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(blob_error(e)),
            },
        };
        match removed {
            Ok(()) => {}
            Err(e) => tracing::warn!(
                bucket,
                blob,
                "could not remove a blob (the sweep will): {e}"
            ),
        }
    }

    /// Removes a candidate the store called an orphan; `false` if it could
    /// not be removed (or was gone already).
    pub(crate) async fn remove_candidate(&self, candidate: &Candidate) -> bool {
        match &candidate.at {
            Removal::File(path) => std::fs::remove_file(path).is_ok(),
            // A composite's folder holds up to 10,000 part files: an unlink
            // each, off the runtime's threads.
            Removal::Folder(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(path).is_ok())
                    .await
                    .unwrap_or(false)
            }
            Removal::Composite(folder) => match self.remove_all_under(folder).await {
                Ok(removed) => removed,
                Err(e) => {
                    tracing::warn!(blob = %candidate.blob, "could not remove an orphaned blob: {e}");
                    false
                }
            },
            Removal::Object(at) => match self.store.delete(at).await {
                Ok(()) => true,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(e) => {
                    tracing::warn!(blob = %candidate.blob, "could not remove an orphaned blob: {}", one_line(e));
                    false
                }
            },
        }
    }

    /// The buckets whose blobs the storage holds, declared or not (a
    /// bucket a deployment dropped, or one deleted while its blobs were
    /// being removed): the directories under the root, or the prefixes
    /// under the S3 prefix, named as a bucket may be.
    pub(crate) async fn bucket_names(&self) -> Result<Vec<String>, crate::BucketError> {
        let names: Vec<String> = match &self.kind {
            Kind::Local { root } => std::fs::read_dir(root)
                .map_err(blob_error)?
                .flatten()
                .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
                .collect(),
            Kind::S3 { location, .. } => self
                .store
                .list_with_delimiter(location.root_path().as_ref())
                .await
                .map_err(blob_error)?
                .common_prefixes
                .iter()
                .filter_map(|prefix| prefix.filename().map(str::to_owned))
                .collect(),
        };
        Ok(names
            .into_iter()
            .filter(|name| nimbus_manifest::bucket::is_bucket_name(name))
            .collect())
    }

    /// Removes `bucket`'s local directory if it is empty; on S3 there is
    /// nothing to remove (a prefix exists only through its objects).
    pub(crate) fn remove_empty_bucket(&self, bucket: &str) {
        if let Kind::Local { root } = &self.kind {
            // Fails, and keeps it, if anything is left in it.
            if std::fs::remove_dir(root.join(bucket)).is_ok()
                && let Err(e) = std::fs::File::open(root).and_then(|d| d.sync_all())
            {
                tracing::warn!(bucket, "could not sync the buckets directory: {e}");
            }
        }
    }

    /// Candidate orphans of `bucket`: blobs older than `grace`, in the order
    /// the listing gives them. Whether one is an orphan is the store's to
    /// say (no object refers to it and no upload is writing it).
    pub(crate) fn candidates(
        &self,
        bucket: &str,
        grace: Duration,
    ) -> BoxStream<'_, Result<Candidate, crate::BucketError>> {
        match &self.kind {
            Kind::Local { root } => {
                futures::stream::iter(local_candidates(root.join(bucket), grace).map(Ok)).boxed()
            }
            Kind::S3 { .. } => {
                let now = SystemTime::now();
                let prefix = self.bucket_path(bucket);
                let depth = prefix.parts().count() + 1;
                // The listing is in name order, so a composite's parts come
                // together: the folder is a candidate once, at its first.
                let mut last_composite: Option<String> = None;
                self.store
                    .list(Some(&prefix))
                    .filter_map(move |listed| {
                        let candidate = match listed {
                            Err(e) => Some(Err(blob_error(e))),
                            Ok(meta) => {
                                let modified = SystemTime::from(meta.last_modified);
                                let old = now.duration_since(modified).unwrap_or_default() >= grace;
                                // Only what Nimbus writes there: anything
                                // else put under the prefix is left alone.
                                let parts: Vec<_> = meta.location.parts().collect();
                                let names: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
                                let (blob, at) = match names[..] {
                                    [.., name]
                                        if names.len() == depth && Blobs::is_blob_name(name) =>
                                    {
                                        (
                                            Some(name.to_owned()),
                                            Removal::Object(meta.location.clone()),
                                        )
                                    }
                                    [.., folder, part]
                                        if names.len() == depth + 1
                                            && crate::composite::parts_of(folder).is_some()
                                            && crate::composite::parse_part_name(part)
                                                .is_some()
                                            && last_composite.as_deref() != Some(folder) =>
                                    {
                                        last_composite = Some(folder.to_owned());
                                        (
                                            Some(folder.to_owned()),
                                            Removal::Composite(prefix.child(folder)),
                                        )
                                    }
                                    _ => (None, Removal::Object(meta.location.clone())),
                                };
                                blob.filter(|_| old).map(|blob| Ok(Candidate { blob, at }))
                            }
                        };
                        std::future::ready(candidate)
                    })
                    .boxed()
            }
        }
    }
}

pub(crate) fn prepare_dir(root: &std::path::Path, bucket: &str) -> Result<(), crate::BucketError> {
    let dir = root.join(bucket);
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(blob_error)?;
    for synced in [Some(root), root.parent()].into_iter().flatten() {
        std::fs::File::open(synced)
            .and_then(|d| d.sync_all())
            .map_err(blob_error)?;
    }
    Ok(())
}

/// Makes `file`, under `root`, durable: the file, then each folder from
/// its own up to `root`, so neither it nor a folder created for it can
/// vanish on power loss.
pub(crate) fn sync_local(root: &std::path::Path, file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Opens `at` in `store` (see [`Blobs::open`]); `None` if it is not there.
pub(crate) async fn open_at(
    store: &dyn ObjectStore,
    at: &BlobPath,
    range: Option<Range<u64>>,
) -> Result<Option<ByteStream>, crate::BucketError> {
    if range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok(Some(futures::stream::empty().boxed()));
    }
    let options = GetOptions {
        range: range.map(GetRange::Bounded),
        ..GetOptions::default()
    };
    let got = match store.get_opts(at, options).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(blob_error(e)),
    };
    Ok(Some(match got.payload {
        GetResultPayload::File(file, _) => file_chunks(file, got.range),
        GetResultPayload::Stream(body) => body.map(|r| r.map_err(blob_error)).boxed(),
    }))
}

/// `range` of a local file, read in slices of [`LOCAL_READ_BYTES`], each a
/// blocking call off the runtime's threads. It ends early if the file does
/// (the caller checks the length it expected).
fn file_chunks(file: std::fs::File, range: Range<u64>) -> ByteStream {
    futures::stream::try_unfold((file, range), |(mut file, range)| async move {
        if range.is_empty() {
            return Ok(None);
        }
        let want = (range.end - range.start).min(LOCAL_READ_BYTES as u64);
        let at = range.start;
        let (file, read) = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(want as usize);
            let read = file
                .seek(SeekFrom::Start(at))
                .and_then(|_| (&mut file).take(want).read_to_end(&mut chunk));
            (file, read.map(|_| chunk))
        })
        .await
        .map_err(blob_error)?;
        let chunk = read.map_err(blob_error)?;
        if chunk.is_empty() {
            return Ok(None);
        }
        let next = at + chunk.len() as u64..range.end;
        Ok(Some((Bytes::from(chunk), (file, next))))
    })
    .boxed()
}

/// Files in `dir` older than `grace`, by blob name (a staging file's name
/// up to its `#`).
fn local_candidates(dir: PathBuf, grace: Duration) -> impl Iterator<Item = Candidate> {
    let now = SystemTime::now();
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| now.duration_since(at).unwrap_or_default() >= grace);
            let blob = name.split('#').next().unwrap_or_default().to_owned();
            // A composite blob is a folder of its parts; no other folder
            // is Nimbus's.
            let at = match entry.file_type().is_ok_and(|t| t.is_dir()) {
                true if crate::composite::parts_of(&blob).is_some() => Removal::Folder(path),
                true => return None,
                false => Removal::File(path),
            };
            old.then_some(Candidate { blob, at })
        })
}

/// Blobs on a fresh prefix of the test process's private S3 service, with
/// the bucket `photos` ready.
#[cfg(test)]
pub(crate) async fn s3_blobs_with_photos() -> Blobs {
    let server = nimbus_test_s3::server();
    let config = S3Config::with_static_credentials(
        crate::S3Location::parse(&server.fresh_location()).unwrap(),
        Some(server.endpoint()),
        None,
        nimbus_test_s3::ACCESS_KEY_ID,
        nimbus_test_s3::SECRET_ACCESS_KEY,
    );
    let blobs = Blobs::s3(&config).unwrap();
    blobs.prepare("photos").await.unwrap();
    blobs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write never replaces a blob: the create-only put refuses a name
    /// that exists, so bytes an object refers to cannot change underneath.
    async fn a_second_write_of_one_name_fails_and_keeps_the_first(blobs: Blobs) {
        blobs
            .write("photos", "same", Bytes::from_static(b"first"))
            .await
            .unwrap();
        let second = blobs
            .write("photos", "same", Bytes::from_static(b"second"))
            .await;
        assert!(second.is_err(), "a blob was overwritten");
        let read = blobs.read("photos", "same", None).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"first"[..]));
    }

    /// A body of several S3 parts (and many local write slices) streams in
    /// and reads back whole and in a range, with its MD5; one past its limit
    /// leaves no blob.
    async fn a_streamed_write_reads_back_whole_and_an_over_limit_one_leaves_nothing(blobs: Blobs) {
        let bytes: Vec<u8> = (0..(2 * crate::write::S3_PART_BYTES + 12345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = bytes
            .chunks(100_000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut body = futures::stream::iter(chunks.clone());
        let written = blobs
            .write_stream(
                blobs.blob_target("photos", "streamed"),
                &mut body,
                bytes.len() as u64,
                true,
                |_| unreachable!("within the limit"),
            )
            .await
            .unwrap();
        assert_eq!(written.size, bytes.len() as u64);
        assert_eq!(
            written.md5.map(|m| crate::meta::hex(&m)),
            Some(crate::etag(&bytes))
        );
        let read = blobs.read("photos", "streamed", None).await.unwrap();
        assert!(
            read.as_deref() == Some(&bytes[..]),
            "the blob read back differs"
        );
        // A range across local read slices and S3 parts.
        let range = LOCAL_READ_BYTES as u64 - 7..crate::write::S3_PART_BYTES as u64 + 5;
        let read = blobs
            .read("photos", "streamed", Some(range.clone()))
            .await
            .unwrap();
        assert!(
            read.as_deref() == Some(&bytes[range.start as usize..range.end as usize]),
            "the range read back differs"
        );

        let mut body = futures::stream::iter(chunks);
        let refused = blobs
            .write_stream(
                blobs.blob_target("photos", "over"),
                &mut body,
                bytes.len() as u64 - 1,
                false,
                |size| crate::BucketError::TooLarge {
                    bucket: "photos".into(),
                    size,
                    limit: 0,
                },
            )
            .await;
        assert!(matches!(
            refused,
            Err(crate::UploadError::Bucket(
                crate::BucketError::TooLarge { .. }
            ))
        ));
        assert_eq!(blobs.read("photos", "over", None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn local_streamed_writes_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path().to_owned()).unwrap();
        prepare_dir(dir.path(), "photos").unwrap();
        a_streamed_write_reads_back_whole_and_an_over_limit_one_leaves_nothing(blobs).await;
        assert!(!dir.path().join("photos").join("over").exists());
    }

    #[tokio::test]
    async fn s3_streamed_writes_are_whole() {
        let blobs = s3_blobs_with_photos().await;
        a_streamed_write_reads_back_whole_and_an_over_limit_one_leaves_nothing(blobs).await;
    }

    #[tokio::test]
    async fn local_blobs_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path().to_owned()).unwrap();
        prepare_dir(dir.path(), "photos").unwrap();
        a_second_write_of_one_name_fails_and_keeps_the_first(blobs).await;
    }

    #[tokio::test]
    async fn s3_blobs_are_written_once() {
        let blobs = s3_blobs_with_photos().await;
        a_second_write_of_one_name_fails_and_keeps_the_first(blobs).await;
    }

    /// The storage it wraps, counting the deletes of one object sent to it.
    #[derive(Debug)]
    struct CountingDeletes {
        inner: Arc<dyn ObjectStore>,
        deletes: std::sync::atomic::AtomicUsize,
    }

    impl std::fmt::Display for CountingDeletes {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "counting {}", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for CountingDeletes {
        async fn put_opts(
            &self,
            location: &BlobPath,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &BlobPath,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &BlobPath,
            options: GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        async fn delete(&self, location: &BlobPath) -> object_store::Result<()> {
            self.deletes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.delete(location).await
        }
        fn delete_stream<'a>(
            &'a self,
            locations: BoxStream<'a, object_store::Result<BlobPath>>,
        ) -> BoxStream<'a, object_store::Result<BlobPath>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&BlobPath>,
        ) -> BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&BlobPath>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy(&self, from: &BlobPath, to: &BlobPath) -> object_store::Result<()> {
            self.inner.copy(from, to).await
        }
        async fn copy_if_not_exists(
            &self,
            from: &BlobPath,
            to: &BlobPath,
        ) -> object_store::Result<()> {
            self.inner.copy_if_not_exists(from, to).await
        }
    }

    /// A composite blob may have thousands of parts, and a delete or a
    /// replacing put waits for its removal (as does the sweep), as a
    /// completion's answer waits for its upload's files: on S3 they go in
    /// bulk (DeleteObjects, 1,000 keys a request), not in a request each one
    /// after the other.
    #[tokio::test]
    async fn on_s3_a_composite_blob_and_an_upload_are_removed_in_bulk_not_a_request_per_file() {
        let mut blobs = s3_blobs_with_photos().await;
        let id = Blobs::new_name();
        let mut parts = Vec::new();
        for i in 1..=40 {
            let name = format!("{i:05}.{}", Blobs::new_name());
            blobs
                .write_staged(&id, &name, Bytes::from(vec![i as u8; 3]))
                .await
                .unwrap();
            parts.push((name, 3));
        }
        let blob = crate::composite::new_name(parts.len());
        let adopted = blobs.adopt_parts("photos", &blob, &id, &parts).await;
        assert!(matches!(adopted, Ok(crate::composite::Adopted::Whole)));
        let counting = Arc::new(CountingDeletes {
            inner: blobs.store.clone(),
            deletes: Default::default(),
        });
        blobs.store = counting.clone();
        blobs.remove("photos", &blob).await;
        assert_eq!(blobs.read("photos", &blob, None).await.unwrap(), None);
        let listed: Vec<_> = blobs
            .store()
            .list(Some(&blobs.location("photos", &blob)))
            .collect()
            .await;
        assert!(listed.is_empty(), "parts were left");
        let deletes = counting.deletes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(deletes, 0, "a request per part");

        // So are the files of an upload, two a part, once it is completed
        // (the client waiting for the answer) or aborted.
        assert!(blobs.remove_staged(&id).await.unwrap());
        assert!(blobs.list_staged(&id).await.unwrap().is_empty());
        let deletes = counting.deletes.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(deletes, 0, "a request per staged file");
    }
}
