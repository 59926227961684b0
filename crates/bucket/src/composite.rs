//! Composite blobs: the bytes of a completed multipart upload, kept as the
//! parts it was uploaded in rather than written again as one blob. Its name
//! is `UUID-N` (a fresh blob name and its number of parts), a folder beside
//! the bucket's other blobs holding one file per part, `POSITION.SIZE`
//! (position from 1, five digits so names sort in order): the blob's name
//! says how many parts to find, the parts' names how long each is.
//! Completion moves no bytes through Nimbus: locally each part file is
//! hard-linked from the staging area (the same file, so the upload keeps
//! its parts until the object is committed and a crash in between leaves
//! both whole), on S3 copied server-side (a part past what one copy takes
//! is streamed through, as before). A read maps its range onto the
//! parts it spans and streams them in order; removal takes the folder
//! whole, and the orphan sweep sees it as one blob.

use crate::UploadError;
use crate::blob::{Blobs, ByteStream, blob_error, open_at, sync_local};
use crate::write::Target;
use futures::stream::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as BlobPath;
use std::ops::Range;

/// Part copies sent to S3 at once while a composite is put together.
const S3_COPIES_IN_FLIGHT: usize = 4;
/// The largest source S3's CopyObject takes; a larger part is read and
/// written again through Nimbus.
const S3_MAX_COPY_BYTES: u64 = 5 << 30;

/// A fresh composite blob name for `parts` parts.
pub(crate) fn new_name(parts: usize) -> String {
    format!("{}-{parts}", Blobs::new_name())
}

/// How many parts composite blob `blob` has; `None` if it is not a
/// composite's name.
pub(crate) fn parts_of(blob: &str) -> Option<usize> {
    let (name, parts) = blob.split_once('-')?;
    let digits = !parts.is_empty() && parts.bytes().all(|b| b.is_ascii_digit());
    if !Blobs::is_blob_name(name) || !digits || parts.starts_with('0') {
        return None;
    }
    parts.parse().ok()
}

fn part_name(position: usize, size: u64) -> String {
    format!("{position:05}.{size}")
}

/// The position and size a part file's name gives.
pub(crate) fn parse_part_name(name: &str) -> Option<(usize, u64)> {
    let (position, size) = name.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if position.len() < 5 || !digits(position) || !digits(size) {
        return None;
    }
    Some((position.parse().ok()?, size.parse().ok()?))
}

/// What putting a composite together found.
pub(crate) enum Adopted {
    Whole,
    /// The staged bytes of the part at this position (from 1) are gone.
    Missing(usize),
}

impl Blobs {
    /// Makes composite blob `blob` of `bucket` from the staged files of
    /// upload `id` named in `parts` (with their sizes), in order, without
    /// reading them: locally hard links (a copy only where a link cannot be
    /// made: another filesystem, or one without hard links), fsynced with
    /// the folders; on S3
    /// server-side copies. The staged files stay until the upload goes.
    pub(crate) async fn adopt_parts(
        &self,
        bucket: &str,
        blob: &str,
        id: &str,
        parts: &[(String, u64)],
    ) -> Result<Adopted, crate::BucketError> {
        self.adopt_parts_copying(bucket, blob, id, parts, S3_MAX_COPY_BYTES)
            .await
    }

    /// [`Blobs::adopt_parts`], with parts past `max_copy_bytes` streamed
    /// rather than copied on S3.
    async fn adopt_parts_copying(
        &self,
        bucket: &str,
        blob: &str,
        id: &str,
        parts: &[(String, u64)],
        max_copy_bytes: u64,
    ) -> Result<Adopted, crate::BucketError> {
        let named: Vec<(String, String, u64)> = parts
            .iter()
            .enumerate()
            .map(|(i, (data, size))| (data.clone(), part_name(i + 1, *size), *size))
            .collect();
        if let Some(root) = self.local_root() {
            let bucket_dir = root.join(bucket);
            let folder = bucket_dir.join(blob);
            let staged = root.join(crate::staging::AREA).join(id);
            return tokio::task::spawn_blocking(move || -> std::io::Result<Adopted> {
                // Create-only, as every blob: a name that exists is never
                // written into.
                std::fs::create_dir(&folder)?;
                for (i, (data, name, _)) in named.iter().enumerate() {
                    let (from, to) = (staged.join(data), folder.join(name));
                    match std::fs::hard_link(&from, &to) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Ok(Adopted::Missing(i + 1));
                        }
                        // Another filesystem, one without hard links
                        // (EPERM, EOPNOTSUPP), or a file at its link limit:
                        // the bytes are copied instead.
                        Err(_) => {
                            std::fs::copy(&from, &to)?;
                            std::fs::File::open(&to)?.sync_all()?;
                        }
                    }
                }
                // The links' entries, then the folder's own.
                sync_local(&bucket_dir, &folder)?;
                Ok(Adopted::Whole)
            })
            .await
            .map_err(blob_error)?
            .map_err(blob_error);
        }
        let folder = self.location(bucket, blob);
        let store = self.shared_store();
        let copies = named
            .into_iter()
            .enumerate()
            .map(|(i, (data, name, size))| {
                let (store, to) = (store.clone(), folder.child(name.as_str()));
                let from = self.staged_path(id, &data);
                async move {
                    if size > max_copy_bytes {
                        let Some(mut body) = open_at(store.as_ref(), &from, None).await? else {
                            return Ok(Some(i + 1));
                        };
                        let target = Target {
                            at: to,
                            local: None,
                        };
                        self.write_stream(target, &mut body, size, false, |_| {
                            crate::BucketError::Blob(format!(
                                "staged part `{from}` outgrew its size"
                            ))
                        })
                        .await
                        .map_err(|e| match e {
                            UploadError::Body(e) | UploadError::Bucket(e) => e,
                        })?;
                        return Ok(None);
                    }
                    // A plain copy: the name is fresh and never reused, so there
                    // is nothing to write over (`object_store` sends a
                    // create-only copy only when configured for one).
                    match store.copy(&from, &to).await {
                        Ok(()) => Ok(None),
                        Err(object_store::Error::NotFound { .. }) => Ok(Some(i + 1)),
                        Err(e) => Err(blob_error(e)),
                    }
                }
            });
        let missing: Vec<Option<usize>> = futures::stream::iter(copies)
            .buffered(S3_COPIES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(match missing.into_iter().flatten().next() {
            Some(position) => Adopted::Missing(position),
            None => Adopted::Whole,
        })
    }

    /// The part files of composite `blob` of `bucket` with their sizes, in
    /// order; `None` unless all `parts` of them are there (it is gone, or
    /// going).
    async fn composite_parts(
        &self,
        bucket: &str,
        blob: &str,
        parts: usize,
    ) -> Result<Option<Vec<(BlobPath, u64)>>, crate::BucketError> {
        let folder = self.location(bucket, blob);
        let names: Vec<String> = match self.local_root() {
            Some(root) => {
                let dir = root.join(bucket).join(blob);
                let listed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                    let mut names = Vec::new();
                    for entry in std::fs::read_dir(dir)? {
                        names.extend(entry?.file_name().to_str().map(str::to_owned));
                    }
                    Ok(names)
                })
                .await
                .map_err(blob_error)?;
                match listed {
                    Ok(names) => names,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(blob_error(e)),
                }
            }
            None => self
                .store()
                .list(Some(&folder))
                .map_ok(|meta| meta.location.filename().unwrap_or_default().to_owned())
                .try_collect()
                .await
                .map_err(blob_error)?,
        };
        let mut found: Vec<(usize, u64, String)> = names
            .into_iter()
            .filter_map(|name| parse_part_name(&name).map(|(at, size)| (at, size, name)))
            .collect();
        found.sort();
        let whole = found.len() == parts && found.iter().enumerate().all(|(i, p)| p.0 == i + 1);
        Ok(whole.then(|| {
            found
                .into_iter()
                .map(|(_, size, name)| (folder.child(name.as_str()), size))
                .collect()
        }))
    }

    /// The bytes of composite `blob` in `range` (all of them without one)
    /// as they are read; `None` if it is gone. The first part read is
    /// opened before this returns, the others as the read reaches them, so
    /// (unlike a one-file blob) a read racing the object's removal may end
    /// with an error; never with other bytes, since names are not reused.
    pub(crate) async fn open_composite(
        &self,
        bucket: &str,
        blob: &str,
        parts: usize,
        range: Option<Range<u64>>,
    ) -> Result<Option<ByteStream>, crate::BucketError> {
        let Some(files) = self.composite_parts(bucket, blob, parts).await? else {
            return Ok(None);
        };
        let total: u64 = files.iter().map(|f| f.1).sum();
        let range = range.unwrap_or(0..total);
        let mut pieces = Vec::new();
        let mut start = 0u64;
        for (at, size) in files {
            let end = start + size;
            let (from, to) = (range.start.max(start), range.end.min(end));
            if from < to {
                pieces.push((at, from - start..to - start));
            }
            start = end;
        }
        let mut pieces = pieces.into_iter();
        let Some((first_at, first_range)) = pieces.next() else {
            return Ok(Some(futures::stream::empty().boxed()));
        };
        // Each part is held to its length, so a damaged one fails the read
        // where it ends short instead of moving the next part's bytes up.
        let store = self.shared_store();
        let first_len = first_range.end - first_range.start;
        let Some(first) = open_at(store.as_ref(), &first_at, Some(first_range)).await? else {
            return Ok(None);
        };
        let rest = futures::stream::iter(pieces)
            .then(move |(at, range)| {
                let store = store.clone();
                async move {
                    let len = range.end - range.start;
                    let opened = open_at(store.as_ref(), &at, Some(range)).await?;
                    let part = opened.ok_or_else(|| {
                        crate::BucketError::Blob(format!("part `{at}` of the blob is gone"))
                    })?;
                    Ok::<_, crate::BucketError>(crate::exactly(part, len))
                }
            })
            .try_flatten();
        Ok(Some(crate::exactly(first, first_len).chain(rest).boxed()))
    }

    /// Removes composite `blob` of `bucket`, every part of it.
    pub(crate) async fn remove_composite(
        &self,
        bucket: &str,
        blob: &str,
    ) -> Result<(), crate::BucketError> {
        if let Some(root) = self.local_root() {
            // An unlink per part: off the runtime's threads.
            let folder = root.join(bucket).join(blob);
            let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(folder))
                .await
                .map_err(blob_error)?;
            return match removed {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(blob_error(e)),
            };
        }
        self.remove_all_under(&self.location(bucket, blob)).await?;
        Ok(())
    }

    /// Removes every object under `folder` on S3; `true` if there was any.
    pub(crate) async fn remove_all_under(
        &self,
        folder: &BlobPath,
    ) -> Result<bool, crate::BucketError> {
        let listed: Vec<BlobPath> = self
            .store()
            .list(Some(folder))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(blob_error)?;
        // A composite may have 10,000 parts, and a delete or a replacing
        // put waits for their removal.
        self.delete_all(&listed).await?;
        Ok(!listed.is_empty())
    }

    /// Removes `locations` in bulk (on S3 DeleteObjects, 1,000 keys a
    /// request); one already gone is not an error.
    pub(crate) async fn delete_all(
        &self,
        locations: &[BlobPath],
    ) -> Result<(), crate::BucketError> {
        let locations = futures::stream::iter(locations.iter().cloned().map(Ok)).boxed();
        let mut deleted = self.store().delete_stream(locations);
        while let Some(deleted) = deleted.next().await {
            match deleted {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(blob_error(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// On S3 a part past what one copy takes is streamed into the
    /// composite instead; either way the composite reads back whole.
    #[tokio::test]
    async fn on_s3_a_part_too_large_to_copy_is_streamed_into_the_composite() {
        let blobs = crate::blob::s3_blobs_with_photos().await;
        let id = Blobs::new_name();
        blobs
            .write_staged(&id, "00001.a", Bytes::from_static(b"copied "))
            .await
            .unwrap();
        blobs
            .write_staged(&id, "00002.b", Bytes::from_static(b"and streamed"))
            .await
            .unwrap();
        let parts = [("00001.a".to_owned(), 7), ("00002.b".to_owned(), 12)];
        let blob = new_name(2);
        let adopted = blobs
            .adopt_parts_copying("photos", &blob, &id, &parts, 10)
            .await
            .unwrap();
        assert!(matches!(adopted, Adopted::Whole));
        let read = blobs.read("photos", &blob, None).await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"copied and streamed"[..]));
        let gone = blobs
            .adopt_parts_copying(
                "photos",
                &new_name(1),
                &id,
                &[("00003.c".to_owned(), 20)],
                10,
            )
            .await
            .unwrap();
        assert!(matches!(gone, Adopted::Missing(1)));
    }

    #[test]
    fn composite_names_say_how_many_parts_and_part_names_their_sizes() {
        let name = new_name(13);
        assert_eq!(parts_of(&name), Some(13));
        assert_eq!(parts_of(&Blobs::new_name()), None);
        assert_eq!(parts_of(&format!("{}-013", Blobs::new_name())), None);
        assert_eq!(parts_of("../x-2"), None);
        assert_eq!(parse_part_name(&part_name(7, 8 << 20)), Some((7, 8 << 20)));
        assert_eq!(parse_part_name("00001.x"), None);
        assert_eq!(parse_part_name("1.5"), None);
    }
}
