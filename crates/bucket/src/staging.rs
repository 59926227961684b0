//! The staging area of multipart uploads in object storage: `_uploads/ID/`
//! beside the buckets (a name no bucket can have, so neither the orphan
//! sweep nor a bucket listing ever looks there), holding the upload's
//! description and its parts, each written once under a fresh name and
//! durable before the write returns. An upload's files go when it is
//! completed or aborted, or with the sweep of uploads older than a bound.

use crate::blob::{Blobs, blob_error, sync_local};
use crate::write::Target;
use bytes::Bytes;
use futures::TryStreamExt as _;
use object_store::path::Path as BlobPath;
use object_store::{PutMode, PutOptions, PutPayload};
use std::time::SystemTime;

/// The folder beside the buckets that holds uploads in progress.
pub(crate) const AREA: &str = "_uploads";

/// A file of an upload as listed.
pub(crate) struct Staged {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

impl Blobs {
    fn area(&self) -> BlobPath {
        match self.root_prefix() {
            Some(root) => root.child(AREA),
            None => BlobPath::from(AREA),
        }
    }

    fn upload_dir(&self, id: &str) -> BlobPath {
        self.area().child(id)
    }

    /// Writes `name` of upload `id` (which must not exist) and makes it
    /// durable, with the folders leading to it.
    pub(crate) async fn write_staged(
        &self,
        id: &str,
        name: &str,
        bytes: Bytes,
    ) -> Result<(), crate::BucketError> {
        let at = self.upload_dir(id).child(name);
        let payload = PutPayload::from_bytes(bytes);
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self.store().put_opts(&at, payload.clone(), create).await {
            Ok(_) => {}
            Err(object_store::Error::NotImplemented) => {
                self.store().put(&at, payload).await.map_err(blob_error)?;
            }
            Err(e) => return Err(blob_error(e)),
        }
        if let Some(root) = self.local_root() {
            let file = root.join(AREA).join(id).join(name);
            let root = root.to_owned();
            tokio::task::spawn_blocking(move || sync_local(&root, &file))
                .await
                .map_err(blob_error)?
                .map_err(blob_error)?;
        }
        Ok(())
    }

    /// Where `name` of upload `id` is in object storage.
    pub(crate) fn staged_path(&self, id: &str, name: &str) -> BlobPath {
        self.upload_dir(id).child(name)
    }

    /// Where a streamed write of `name` of upload `id` goes: locally the
    /// file, fsynced with the folders up to the data directory's root.
    pub(crate) fn staged_target(&self, id: &str, name: &str) -> Target {
        Target {
            at: self.upload_dir(id).child(name),
            local: self
                .local_root()
                .map(|root| (root.join(AREA).join(id).join(name), root.to_owned())),
        }
    }

    /// Removes `name` of upload `id`; one already gone is not an error.
    pub(crate) async fn remove_staged_file(&self, id: &str, name: &str) {
        let at = self.upload_dir(id).child(name);
        match self.store().delete(&at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(
                upload = id,
                "could not remove a part's bytes (they go with the upload): {e}"
            ),
        }
    }

    /// The bytes of `name` of upload `id`; `None` if it is not there.
    pub(crate) async fn read_staged(
        &self,
        id: &str,
        name: &str,
    ) -> Result<Option<Bytes>, crate::BucketError> {
        let at = self.upload_dir(id).child(name);
        match self.store().get(&at).await {
            Ok(got) => match got.bytes().await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(blob_error(e)),
            },
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(blob_error(e)),
        }
    }

    /// The files of upload `id`, in name order.
    pub(crate) async fn list_staged(&self, id: &str) -> Result<Vec<Staged>, crate::BucketError> {
        let dir = self.upload_dir(id);
        let listed: Vec<object_store::ObjectMeta> =
            match self.store().list(Some(&dir)).try_collect().await {
                Ok(listed) => listed,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(blob_error(e)),
            };
        let mut files: Vec<Staged> = listed
            .into_iter()
            .filter_map(|meta| {
                Some(Staged {
                    name: meta.location.filename()?.to_owned(),
                    size: meta.size,
                    modified: SystemTime::from(meta.last_modified),
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// The ids of every upload with files in the staging area.
    pub(crate) async fn staged_uploads(&self) -> Result<Vec<String>, crate::BucketError> {
        if let Some(root) = self.local_root() {
            return Ok(std::fs::read_dir(root.join(AREA))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
                .collect());
        }
        let listed = self
            .store()
            .list_with_delimiter(Some(&self.area()))
            .await
            .map_err(blob_error)?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Removes every file of upload `id` (one already gone is not an
    /// error); `false` if there was none.
    pub(crate) async fn remove_staged(&self, id: &str) -> Result<bool, crate::BucketError> {
        if let Some(root) = self.local_root() {
            // Staging files of cut-off writes, which listings hide, go too;
            // an upload of 10,000 parts has 20,001 files, an unlink each,
            // off the runtime's threads.
            let dir = root.join(AREA).join(id);
            let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir))
                .await
                .map_err(blob_error)?;
            return match removed {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(blob_error(e)),
            };
        }
        // Some services list a folder whose files are gone for a while.
        let files = self.list_staged(id).await?;
        // An upload of 10,000 parts has 20,001 files, and a completion's
        // answer waits for their removal: they go in bulk, the description
        // last, so an upload cut off midway is still found (and aborted).
        let (description, parts): (Vec<_>, Vec<_>) = files
            .iter()
            .map(|file| self.upload_dir(id).child(file.name.as_str()))
            .partition(|at| at.filename() == Some(crate::multipart::DESCRIPTION));
        self.delete_all(&parts).await?;
        self.delete_all(&description).await?;
        Ok(!files.is_empty())
    }
}
