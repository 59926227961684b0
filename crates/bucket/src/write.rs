//! Streamed blob writes: an upload's bytes go to a fresh blob as they
//! arrive, with a bounded buffer whatever the object's size, its MD5 taken
//! and its size limit enforced on the way. Locally the file is created
//! with `O_EXCL` (create-only), written in slices of [`LOCAL_WRITE_BYTES`]
//! and fsynced with its folders before the write returns; on S3 a body
//! that fits in one [`S3_PART_BYTES`] is one create-only PUT, a larger one
//! a multipart upload of such parts (at most [`S3_PARTS_IN_FLIGHT`] being
//! sent at once), which S3 makes visible, whole, only at its completion.
//! A write that fails, or is dropped before it finishes (its caller gone
//! mid-body), is given up: the multipart upload aborted (else the service
//! keeps its parts for ever, unseen by any listing the sweep makes), the
//! local file removed.

use crate::BucketError;
use crate::blob::{Blobs, blob_error, sync_local};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use md5::{Digest as _, Md5};
use object_store::path::Path as BlobPath;
use object_store::{MultipartUpload, PutMode, PutOptions, PutPayload};
use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use tokio::task::JoinSet;

/// Bytes gathered before one local file write (a blocking call off the
/// runtime's threads).
pub(crate) const LOCAL_WRITE_BYTES: usize = 1 << 20;
/// Bytes of each part when a blob goes to S3 as a multipart upload (S3's
/// smallest part is 5 MiB); a body no larger is one PUT.
pub(crate) const S3_PART_BYTES: usize = 8 << 20;
/// Parts of one blob being sent to S3 at once.
pub(crate) const S3_PARTS_IN_FLIGHT: usize = 2;

/// Where a streamed write goes.
pub(crate) struct Target {
    pub at: BlobPath,
    /// On the local filesystem: the file, and the folder up to which its
    /// folders are fsynced (created first if missing).
    pub local: Option<(PathBuf, PathBuf)>,
}

/// What a streamed write stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    /// The MD5 of the bytes, when it was asked for.
    pub md5: Option<[u8; 16]>,
}

/// Why a streamed upload failed: its body (the caller's error, such as a
/// failed signature or checksum), or the bucket (the size limit, storage).
#[derive(Debug)]
pub enum UploadError<E> {
    Body(E),
    Bucket(BucketError),
}

impl<E> From<BucketError> for UploadError<E> {
    fn from(e: BucketError) -> Self {
        UploadError::Bucket(e)
    }
}

impl<E> From<nimbus_store::StoreError> for UploadError<E> {
    fn from(e: nimbus_store::StoreError) -> Self {
        UploadError::Bucket(e.into())
    }
}

impl From<UploadError<std::convert::Infallible>> for BucketError {
    fn from(e: UploadError<std::convert::Infallible>) -> Self {
        match e {
            UploadError::Body(never) => match never {},
            UploadError::Bucket(e) => e,
        }
    }
}

enum Sink {
    Local {
        /// `None` only while a write runs on a blocking thread.
        file: Option<std::fs::File>,
        path: PathBuf,
        sync_root: PathBuf,
    },
    S3 {
        /// Started once the body outgrows one part.
        upload: Option<Multipart>,
    },
}

/// An S3 multipart upload under way: the service keeps its parts until it
/// is completed or aborted, so it must be aborted whenever it is not
/// completed, even when the write is dropped.
struct Multipart {
    upload: Box<dyn MultipartUpload>,
    /// Parts being sent (at most [`S3_PARTS_IN_FLIGHT`]).
    parts: JoinSet<object_store::Result<()>>,
}

impl Multipart {
    /// Stops the parts being sent, then aborts the upload, so no part
    /// finishing afterwards is left behind.
    async fn abort(mut self) {
        self.parts.shutdown().await;
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(
                "could not abort a multipart write to object storage: {}",
                crate::blob::one_line(e)
            );
        }
    }
}

/// One blob being written. Dropped before it finished (its caller went
/// away mid-body), it is given up in a task of its own: an S3 multipart
/// upload aborted, a local file removed.
struct Writer<'a> {
    blobs: &'a Blobs,
    at: BlobPath,
    sink: Sink,
    /// Chunks not written yet, and their length.
    pending: VecDeque<Bytes>,
    pending_len: usize,
    /// Finished or given up already: nothing for the drop to do.
    settled: bool,
}

impl<'a> Writer<'a> {
    async fn create(blobs: &'a Blobs, target: Target) -> Result<Writer<'a>, BucketError> {
        let sink = match target.local {
            Some((path, sync_root)) => {
                let open = path.clone();
                let file = tokio::task::spawn_blocking(move || {
                    if let Some(dir) = open.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    // Create-only: a name that exists is never written over.
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&open)
                })
                .await
                .map_err(blob_error)?
                .map_err(blob_error)?;
                Sink::Local {
                    file: Some(file),
                    path,
                    sync_root,
                }
            }
            None => Sink::S3 { upload: None },
        };
        Ok(Writer {
            blobs,
            at: target.at,
            sink,
            pending: VecDeque::new(),
            pending_len: 0,
            settled: false,
        })
    }

    async fn push(&mut self, chunk: Bytes) -> Result<(), BucketError> {
        self.pending_len += chunk.len();
        self.pending.push_back(chunk);
        match &mut self.sink {
            Sink::Local { .. } if self.pending_len >= LOCAL_WRITE_BYTES => self.flush_local().await,
            Sink::S3 { upload } if upload.is_some() || self.pending_len > S3_PART_BYTES => {
                let upload = match upload {
                    Some(upload) => upload,
                    None => {
                        let started = self
                            .blobs
                            .store()
                            .put_multipart(&self.at)
                            .await
                            .map_err(blob_error)?;
                        upload.insert(Multipart {
                            upload: started,
                            parts: JoinSet::new(),
                        })
                    }
                };
                while self.pending_len >= S3_PART_BYTES {
                    // Waits while the parts in flight are at their bound,
                    // so at most a part being gathered and those in flight
                    // are held.
                    while upload.parts.len() >= S3_PARTS_IN_FLIGHT {
                        part_sent(upload.parts.join_next().await)?;
                    }
                    let part = take_front(&mut self.pending, S3_PART_BYTES);
                    self.pending_len -= S3_PART_BYTES;
                    upload.parts.spawn(upload.upload.put_part(part));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn flush_local(&mut self) -> Result<(), BucketError> {
        let Sink::Local { file, .. } = &mut self.sink else {
            return Ok(());
        };
        let Some(mut taken) = file.take() else {
            return Err(BucketError::Blob("a blob write was cut off".into()));
        };
        let chunks = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let (back, written) = tokio::task::spawn_blocking(move || {
            let written = chunks.iter().try_for_each(|c| taken.write_all(c));
            (taken, written)
        })
        .await
        .map_err(blob_error)?;
        *file = Some(back);
        written.map_err(blob_error)
    }

    /// Writes what is left and makes the blob durable; gives it up if
    /// that fails.
    async fn finish(mut self) -> Result<(), BucketError> {
        let finished = self.write_rest().await;
        match finished {
            Ok(()) => self.settled = true,
            Err(_) => self.abort().await,
        }
        finished
    }

    async fn write_rest(&mut self) -> Result<(), BucketError> {
        match &mut self.sink {
            Sink::Local { .. } => {
                self.flush_local().await?;
                let Sink::Local {
                    file,
                    path,
                    sync_root,
                } = &mut self.sink
                else {
                    unreachable!("matched above")
                };
                drop(file.take());
                let (path, sync_root) = (path.clone(), sync_root.clone());
                tokio::task::spawn_blocking(move || sync_local(&sync_root, &path))
                    .await
                    .map_err(blob_error)?
                    .map_err(blob_error)
            }
            Sink::S3 {
                upload: Some(upload),
            } => {
                if self.pending_len > 0 {
                    let rest: PutPayload = self.pending.drain(..).collect();
                    self.pending_len = 0;
                    upload.parts.spawn(upload.upload.put_part(rest));
                }
                while !upload.parts.is_empty() {
                    part_sent(upload.parts.join_next().await)?;
                }
                // `object_store` 0.12 sends the completion without
                // `If-None-Match: *` (its `MultipartUpload::complete` and
                // `MultipartStore::complete_multipart` both complete in its
                // overwrite mode; only its own copy-if-not-exists sends the
                // create-only one), so this completion is not create-only
                // as a one-PUT blob is. Blob names are fresh UUIDv7s, never
                // reused, so there is nothing for it to write over.
                upload.upload.complete().await.map_err(blob_error)?;
                Ok(())
            }
            Sink::S3 { upload: None } => {
                let payload: PutPayload = self.pending.drain(..).collect();
                self.pending_len = 0;
                let create = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let store = self.blobs.store();
                match store.put_opts(&self.at, payload.clone(), create).await {
                    Ok(_) => Ok(()),
                    // Conditional puts turned off for a service without
                    // them (`AWS_CONDITIONAL_PUT=disabled`): a plain put
                    // of the fresh name.
                    Err(object_store::Error::NotImplemented) => {
                        store.put(&self.at, payload).await.map_err(blob_error)?;
                        Ok(())
                    }
                    Err(e) => Err(blob_error(e)),
                }
            }
        }
    }

    /// Gives the write up: an S3 multipart upload is aborted, a local file
    /// removed (whoever registered the blob also removes it, since a
    /// failed put may have stored it all the same).
    async fn abort(mut self) {
        self.settled = true;
        match &mut self.sink {
            Sink::Local { file, path, .. } => {
                drop(file.take());
                let _ = tokio::fs::remove_file(&*path).await;
            }
            Sink::S3 { upload } => {
                if let Some(upload) = upload.take() {
                    upload.abort().await;
                }
            }
        }
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        match &mut self.sink {
            Sink::Local { file, path, .. } => {
                drop(file.take());
                let path = std::mem::take(path);
                self.blobs.cleanups().spawn(async move {
                    let _ = tokio::fs::remove_file(path).await;
                });
            }
            Sink::S3 { upload } => {
                if let Some(upload) = upload.take() {
                    self.blobs.cleanups().spawn(upload.abort());
                }
            }
        }
    }
}

/// The first `len` bytes of `pending`, taken out of it (which holds at
/// least that many).
fn take_front(pending: &mut VecDeque<Bytes>, len: usize) -> PutPayload {
    let mut taken = Vec::new();
    let mut left = len;
    while left > 0 {
        let Some(front) = pending.front_mut() else {
            break;
        };
        if front.len() <= left {
            left -= front.len();
            taken.extend(pending.pop_front());
        } else {
            taken.push(front.split_to(left));
            left = 0;
        }
    }
    taken.into_iter().collect()
}

/// The outcome of a part's upload, as its task ended.
fn part_sent(
    joined: Option<Result<object_store::Result<()>, tokio::task::JoinError>>,
) -> Result<(), BucketError> {
    match joined {
        None => Ok(()),
        Some(joined) => joined.map_err(blob_error)?.map_err(blob_error),
    }
}

impl Blobs {
    /// Writes `body` to `target`, which must not exist, refusing it with
    /// `too_large` once it passes `limit` bytes, and makes it durable.
    /// Nothing is left at `target` when this fails (locally; on S3 an
    /// aborted multipart upload leaves no object).
    pub(crate) async fn write_stream<S, E>(
        &self,
        target: Target,
        body: &mut S,
        limit: u64,
        with_md5: bool,
        too_large: impl Fn(u64) -> BucketError,
    ) -> Result<Written, UploadError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let mut writer = Writer::create(self, target).await?;
        let mut md5 = with_md5.then(Md5::new);
        let mut size = 0u64;
        let failed = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Err(e)) => break Some(UploadError::Body(e)),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > limit {
                break Some(UploadError::Bucket(too_large(size)));
            }
            if let Some(md5) = &mut md5 {
                md5.update(&chunk);
            }
            if let Err(e) = writer.push(chunk).await {
                break Some(e.into());
            }
        };
        if let Some(e) = failed {
            writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        Ok(Written {
            size,
            md5: md5.map(|m| m.finalize().into()),
        })
    }
}
