//! Blob I/O through `object_store`'s local filesystem: every upload goes to
//! a fresh name (never a visible object's), is made durable (the file and
//! its directory are fsynced, which `LocalFileSystem` does not do), and is
//! only then referenced by metadata. Blobs written but never referenced are
//! orphans; `candidates` lists the sweep's suspects (whether one is an
//! orphan is the store's to say: no object refers to it and no registered
//! upload is writing it).

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use object_store::{GetOptions, GetRange, ObjectStore as _, PutPayload};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Where a bucket's bytes live.
pub(crate) struct Blobs {
    fs: LocalFileSystem,
    root: PathBuf,
}

fn location(bucket: &str, blob: &str) -> BlobPath {
    BlobPath::from(format!("{bucket}/{blob}"))
}

fn blob_error(e: impl std::fmt::Display) -> crate::BucketError {
    crate::BucketError::Blob(e.to_string())
}

impl Blobs {
    pub(crate) fn open(root: PathBuf) -> Result<Self, crate::BucketError> {
        std::fs::create_dir_all(&root).map_err(blob_error)?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(blob_error)?;
        Ok(Blobs { fs, root })
    }

    /// Creates `bucket`'s blob directory and makes its entry durable, so a
    /// blob fsynced in it later cannot vanish with the directory on power
    /// loss.
    pub(crate) fn prepare(&self, bucket: &str) -> Result<(), crate::BucketError> {
        let dir = self.root.join(bucket);
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(blob_error)?;
        for synced in [Some(self.root.as_path()), self.root.parent()]
            .into_iter()
            .flatten()
        {
            std::fs::File::open(synced)
                .and_then(|d| d.sync_all())
                .map_err(blob_error)?;
        }
        Ok(())
    }

    /// A new blob name, unique and never reused.
    pub(crate) fn new_name() -> String {
        uuid::Uuid::now_v7().simple().to_string()
    }

    /// Writes `bytes` under `blob` and makes them durable.
    pub(crate) async fn write(
        &self,
        bucket: &str,
        blob: &str,
        bytes: Bytes,
    ) -> Result<(), crate::BucketError> {
        let at = location(bucket, blob);
        self.fs
            .put(&at, PutPayload::from_bytes(bytes))
            .await
            .map_err(blob_error)?;
        let file = self.fs.path_to_filesystem(&at).map_err(blob_error)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(blob_error)?
        .map_err(blob_error)
    }

    /// The bytes of `blob` in `range` (all of them without one); `None` if
    /// the blob is gone (its object was replaced or removed meanwhile).
    pub(crate) async fn read(
        &self,
        bucket: &str,
        blob: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Bytes>, crate::BucketError> {
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(Some(Bytes::new()));
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = match self.fs.get_opts(&location(bucket, blob), options).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(blob_error(e)),
        };
        got.bytes().await.map(Some).map_err(blob_error)
    }

    /// Removes `blob`; one already gone is not an error.
    pub(crate) async fn remove(&self, bucket: &str, blob: &str) {
        match self.fs.delete(&location(bucket, blob)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(
                bucket,
                blob,
                "could not remove a blob (the sweep will): {e}"
            ),
        }
    }

    /// Candidate orphans of `bucket`: files older than `grace`, with their
    /// blob names. A file name with `#` is an upload `LocalFileSystem` was
    /// staging when it was cut off; its blob name is the part before.
    pub(crate) fn candidates(&self, bucket: &str, grace: Duration) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.root.join(bucket)) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|at| now.duration_since(at).unwrap_or_default() >= grace);
            if old {
                let blob = name.split('#').next().unwrap_or_default().to_owned();
                out.push((blob, path));
            }
        }
        out
    }
}
