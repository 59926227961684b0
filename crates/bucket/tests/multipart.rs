//! Multipart uploads in `Buckets` over the SQLite store and a scratch
//! directory: parts survive a restart (a new `Buckets` over the same
//! storage), the orphan sweep never takes them, completing stores the
//! object with S3's multipart ETag and its event, made of the parts' own
//! files (no byte written again) and read across their boundaries, an
//! abandoned upload goes with the upload sweep, and a part cut off
//! mid-body leaves no bytes.

mod common;

use bytes::Bytes;
use nimbus_bucket::{
    Buckets, ByteRange, MIN_PART_BYTES, MultipartError, PutOptions, etag, multipart_etag,
};
use nimbus_manifest::App;
use nimbus_store::{QueueStore, SystemClock};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MANIFEST: &str = r#"
[app]
name = "t"

[function.f]
component = "f.wasm"

[bucket.photos]
max_object_bytes = 16777216

[[trigger.object]]
bucket = "photos"
function = "f"
"#;

async fn open(dir: &Path) -> (Buckets, Arc<SqliteStore>) {
    let app = App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap();
    let options = SqliteOptions {
        path: dir.join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let queue = nimbus_store::QueueConfig {
        name: app.object_triggers[0].queue.clone(),
        visibility_timeout_ms: 30_000,
        retention_ms: 86_400_000,
        delay_ms: 0,
        max_message_bytes: 65_536,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    };
    store.declare_queues(&[queue]).await.unwrap();
    let buckets = Buckets::open(&app, &dir.join("buckets"), store.clone()).unwrap();
    (buckets, store)
}

#[tokio::test]
async fn parts_survive_a_restart_and_the_orphan_sweep_then_complete_into_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let first = vec![7u8; MIN_PART_BYTES as usize];
    let upload = {
        let (buckets, _) = open(dir.path()).await;
        let options = PutOptions {
            content_type: Some("text/plain".into()),
            user_metadata: [("owner".to_owned(), "ada".to_owned())].into(),
            ..PutOptions::default()
        };
        let upload = buckets
            .create_upload("photos", "big/file", options)
            .await
            .unwrap();
        let part = buckets
            .put_part(
                "photos",
                "big/file",
                &upload.id,
                1,
                Bytes::from(first.clone()),
            )
            .await
            .unwrap();
        assert_eq!(part.etag, etag(&first));
        upload.id
    };
    // A new process over the same storage: the part is there, and the
    // orphan sweep (at start, no grace) leaves it.
    let (buckets, store) = open(dir.path()).await;
    buckets.sweep_orphans_at_start().await.unwrap();
    buckets
        .put_part(
            "photos",
            "big/file",
            &upload,
            2,
            Bytes::from_static(b"tail"),
        )
        .await
        .unwrap();
    let parts = buckets
        .list_parts("photos", "big/file", &upload)
        .await
        .unwrap();
    assert_eq!(
        parts.iter().map(|p| (p.number, p.size)).collect::<Vec<_>>(),
        [(1, MIN_PART_BYTES), (2, 4)]
    );
    // The upload belongs to its key: another key cannot see or finish it.
    assert!(matches!(
        buckets.list_parts("photos", "other", &upload).await,
        Err(MultipartError::NoSuchUpload(_))
    ));
    let chosen: Vec<(u32, String)> = parts.iter().map(|p| (p.number, p.etag.clone())).collect();
    let object = buckets
        .complete_upload("photos", "big/file", &upload, &chosen, None)
        .await
        .unwrap();
    let expected = multipart_etag(parts.iter().map(|p| p.etag.as_str())).unwrap();
    assert_eq!(object.etag, expected);
    assert!(expected.ends_with("-2"));
    let got = buckets.get("photos", "big/file", None).await.unwrap();
    assert_eq!(got.bytes.len(), first.len() + 4);
    assert_eq!(got.meta.content_type, "text/plain");
    assert_eq!(got.meta.user_metadata["owner"], "ada");
    // Its event, as for any upload.
    let queue = buckets_queue();
    let received = store.receive(&queue, 10, None).await.unwrap();
    assert_eq!(received.len(), 1);
    // The upload is gone with its parts.
    assert!(matches!(
        buckets.list_parts("photos", "big/file", &upload).await,
        Err(MultipartError::NoSuchUpload(_))
    ));
    assert!(!dir.path().join("buckets/_uploads").join(&upload).exists());
}

fn buckets_queue() -> String {
    let app = App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap();
    app.object_triggers[0].queue.clone()
}

#[tokio::test]
async fn abandoned_uploads_go_with_the_upload_sweep_and_aborted_ones_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let kept = buckets
        .create_upload("photos", "a", PutOptions::default())
        .await
        .unwrap();
    let aborted = buckets
        .create_upload("photos", "b", PutOptions::default())
        .await
        .unwrap();
    buckets
        .put_part("photos", "b", &aborted.id, 1, Bytes::from_static(b"x"))
        .await
        .unwrap();
    buckets
        .abort_upload("photos", "b", &aborted.id)
        .await
        .unwrap();
    assert!(matches!(
        buckets
            .put_part("photos", "b", &aborted.id, 2, Bytes::from_static(b"y"))
            .await,
        Err(MultipartError::NoSuchUpload(_))
    ));
    // Younger than the bound: kept; past it: removed.
    assert_eq!(
        buckets
            .sweep_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    buckets.list_parts("photos", "a", &kept.id).await.unwrap();
    assert_eq!(buckets.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
    assert!(matches!(
        buckets.list_parts("photos", "a", &kept.id).await,
        Err(MultipartError::NoSuchUpload(_))
    ));
    // Hostile ids never reach a path.
    assert!(matches!(
        buckets.list_parts("photos", "a", "../../nimbus.db").await,
        Err(MultipartError::NoSuchUpload(_))
    ));
}

#[tokio::test]
async fn a_completion_checks_order_etags_part_sizes_and_the_object_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let id = buckets
        .create_upload("photos", "k", PutOptions::default())
        .await
        .unwrap()
        .id;
    let small = buckets
        .put_part("photos", "k", &id, 1, Bytes::from_static(b"small"))
        .await
        .unwrap();
    let last = buckets
        .put_part("photos", "k", &id, 2, Bytes::from_static(b"last"))
        .await
        .unwrap();
    let complete = |chosen: Vec<(u32, String)>| {
        let buckets = &buckets;
        let id = id.clone();
        async move {
            buckets
                .complete_upload("photos", "k", &id, &chosen, None)
                .await
        }
    };
    assert!(matches!(
        complete(vec![(2, last.etag.clone()), (1, small.etag.clone())]).await,
        Err(MultipartError::InvalidPartOrder)
    ));
    assert!(matches!(
        complete(vec![(1, "0".repeat(32))]).await,
        Err(MultipartError::InvalidPart(1))
    ));
    assert!(matches!(
        complete(vec![(1, small.etag.clone()), (2, last.etag.clone())]).await,
        Err(MultipartError::EntityTooSmall { number: 1, .. })
    ));
    assert!(matches!(
        buckets
            .put_part("photos", "k", &id, 10_001, Bytes::new())
            .await,
        Err(MultipartError::InvalidPartNumber)
    ));
    // One part alone may be small.
    let object = complete(vec![(1, small.etag.clone())]).await.unwrap();
    assert_eq!(object.size, 5);
}

#[tokio::test]
async fn uploads_in_progress_are_listed_by_key_and_age_within_their_bucket_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let mut ids = Vec::new();
    for key in ["docs/b", "docs/a", "img/c", "docs/a"] {
        let upload = buckets
            .create_upload("photos", key, PutOptions::default())
            .await
            .unwrap();
        ids.push(upload.id);
    }
    let listed = buckets.list_uploads("photos", "docs/").await.unwrap();
    let seen: Vec<(&str, &str)> = listed
        .iter()
        .map(|u| (u.key.as_str(), u.id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("docs/a", ids[1].as_str()),
            ("docs/a", ids[3].as_str()),
            ("docs/b", ids[0].as_str()),
        ]
    );
    assert_eq!(buckets.list_uploads("photos", "").await.unwrap().len(), 4);
    // Completed or aborted ones are gone from the listing.
    buckets
        .abort_upload("photos", "img/c", &ids[2])
        .await
        .unwrap();
    assert!(
        buckets
            .list_uploads("photos", "img/")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        buckets.list_uploads("nope", "").await,
        Err(MultipartError::Bucket(_))
    ));
}

/// A part whose body is refused once read (a checksum that does not
/// match, say) leaves nothing a listing or a completion sees; a part
/// kept the way parts were before they were streamed (one file named by
/// number, ETag and suffix) is still listed and completes.
#[tokio::test]
async fn a_refused_part_leaves_nothing_and_a_part_in_the_earlier_layout_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let upload = buckets
        .create_upload("photos", "k", PutOptions::default())
        .await
        .unwrap();
    let body = futures::stream::iter([Ok::<_, &str>(Bytes::from_static(b"refused"))]);
    let refused = buckets
        .put_part_stream("photos", &upload.id, 1, body, |_, written| {
            assert_eq!(written.size, 7);
            Err("checksum")
        })
        .await;
    assert!(matches!(
        refused,
        Err(nimbus_bucket::UploadError::Body("checksum"))
    ));
    assert_eq!(
        buckets.list_parts("photos", "k", &upload.id).await.unwrap(),
        []
    );
    let staged = dir.path().join("buckets/_uploads").join(&upload.id);
    let files: Vec<String> = std::fs::read_dir(&staged)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, ["upload.json"]);

    let earlier = b"written whole";
    let suffix = "0".repeat(31) + "1";
    std::fs::write(
        staged.join(format!("00001.{}.{suffix}", etag(earlier))),
        earlier,
    )
    .unwrap();
    let parts = buckets.list_parts("photos", "k", &upload.id).await.unwrap();
    assert_eq!(
        parts.iter().map(|p| (p.number, p.size)).collect::<Vec<_>>(),
        [(1, earlier.len() as u64)]
    );
    let object = buckets
        .complete_upload("photos", "k", &upload.id, &[(1, etag(earlier))], None)
        .await
        .unwrap();
    assert_eq!(object.size, earlier.len() as u64);
    let got = buckets.get("photos", "k", None).await.unwrap();
    assert_eq!(&got.bytes[..], earlier);
}

/// A body that yields `chunks`, then, asked for more, says so on the
/// returned receiver and never ends: a client that stopped sending.
fn stalled_after(
    chunks: Vec<Bytes>,
) -> (
    impl futures::Stream<Item = Result<Bytes, &'static str>> + Unpin,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (stalled, told) = tokio::sync::oneshot::channel();
    let mut stalled = Some(stalled);
    let tail = futures::stream::poll_fn(move |_| {
        if let Some(stalled) = stalled.take() {
            let _ = stalled.send(());
        }
        std::task::Poll::Pending
    });
    let body = futures::StreamExt::chain(futures::stream::iter(chunks.into_iter().map(Ok)), tail);
    (body, told)
}

/// A part whose upload is cut off mid-body (its future dropped: the client
/// went away) leaves none of its bytes in the staging area once given up;
/// the upload is still there and takes the part sent again.
#[tokio::test]
async fn a_part_cut_off_mid_body_leaves_no_bytes_in_the_staging_area() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let upload = buckets
        .create_upload("photos", "k", PutOptions::default())
        .await
        .unwrap();
    let staged = dir.path().join("buckets/_uploads").join(&upload.id);
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&staged)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    // More than one local write slice, so bytes reach the file.
    let (body, stalled) = stalled_after(vec![Bytes::from(vec![1u8; 3 << 20])]);
    let mut part = Box::pin(buckets.put_part_stream("photos", &upload.id, 1, body, |_, _| Ok(())));
    tokio::select! {
        _ = &mut part => panic!("a stalled part finished"),
        _ = stalled => {}
    }
    assert_eq!(files().len(), 2, "the part's bytes are being written");
    drop(part);
    buckets.cleanups_settled().await;
    assert_eq!(files(), ["upload.json"]);

    let again = buckets
        .put_part("photos", "k", &upload.id, 1, Bytes::from_static(b"whole"))
        .await
        .unwrap();
    let object = buckets
        .complete_upload("photos", "k", &upload.id, &[(1, again.etag)], None)
        .await
        .unwrap();
    assert_eq!(object.size, 5);
}

/// `len` bytes that differ from one offset to the next, so a range read
/// from the wrong place shows.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The inode of each file in `dir`, by name.
fn inodes(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, e.metadata().unwrap().ino())
        })
        .collect()
}

/// Completing an upload writes none of its bytes again: the object's blob
/// is made of the files its parts were written to (the same inodes, one
/// per part, in order), and reads back whole and by ranges across the
/// parts' boundaries. Replacing or deleting the object takes every part
/// along, and a composite blob nothing refers to (a completion cut off
/// before its commit) goes with the sweep.
#[tokio::test]
async fn a_completion_writes_no_byte_again_and_its_object_reads_across_part_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let root = dir.path().join("buckets");
    let sizes = [MIN_PART_BYTES as usize, MIN_PART_BYTES as usize + 3, 1234];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| pattern(i as u32 * 7919, *size))
        .collect();
    let whole: Vec<u8> = parts.concat();

    let complete = |key: &'static str| {
        let (buckets, parts, root) = (&buckets, &parts, &root);
        async move {
            let (upload, chosen) = common::upload_with_parts(buckets, "photos", key, parts).await;
            // The files holding the parts' bytes (markers are empty).
            let staged = root.join("_uploads").join(&upload.id);
            let data: Vec<u64> = inodes(&staged)
                .into_iter()
                .filter(|(name, _)| std::fs::metadata(staged.join(name)).unwrap().len() > 0)
                .filter(|(name, _)| name != "upload.json")
                .map(|(_, inode)| inode)
                .collect();
            let object = buckets
                .complete_upload("photos", key, &upload.id, &chosen, None)
                .await
                .unwrap();
            (object, data)
        }
    };

    let (object, staged_inodes) = complete("big").await;
    assert_eq!(object.size, whole.len() as u64);
    let blob = root.join("photos").join(&object.blob);
    assert!(blob.is_dir(), "the object's blob is not made of its parts");
    let blob_inodes: Vec<u64> = inodes(&blob).into_values().collect();
    assert_eq!(
        blob_inodes, staged_inodes,
        "the parts' bytes were written again"
    );
    assert!(!root.join("_uploads").join(object.blob.as_str()).exists());

    let got = buckets.get("photos", "big", None).await.unwrap();
    assert!(got.bytes == whole, "the object read back differs");
    let first = sizes[0] as u64;
    let second = first + sizes[1] as u64;
    for range in [
        ByteRange::From {
            first: 0,
            last: Some(0),
        },
        ByteRange::From {
            first: first - 10,
            last: Some(first + 9),
        },
        ByteRange::From {
            first: first - 1,
            last: Some(second),
        },
        ByteRange::From {
            first: second + 5,
            last: None,
        },
        ByteRange::Suffix(sizes[2] as u64 + 100),
    ] {
        let got = buckets.get("photos", "big", Some(range)).await.unwrap();
        let r = got.range.clone().unwrap();
        assert!(
            got.bytes[..] == whole[r.start as usize..r.end as usize],
            "range {range:?} read back differs"
        );
    }

    // Replaced by a plain put, it takes all its parts along.
    buckets
        .put(
            "photos",
            "big",
            Bytes::from_static(b"small"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(!blob.exists(), "a replaced object left its parts");
    let (object, _) = complete("other").await;
    let blob = root.join("photos").join(&object.blob);
    assert!(blob.is_dir());
    assert!(buckets.delete("photos", "other", None).await.unwrap());
    assert!(!blob.exists(), "a deleted object left its parts");

    // A composite blob no object refers to, as a completion cut off
    // before its commit leaves: the sweep removes it whole.
    let (object, _) = complete("kept").await;
    let left = root.join("photos").join(format!("{:032x}-2", 7));
    std::fs::create_dir(&left).unwrap();
    std::fs::write(left.join("00001.3"), b"abc").unwrap();
    std::fs::write(left.join("00002.3"), b"def").unwrap();
    assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(!left.exists());
    assert!(root.join("photos").join(&object.blob).is_dir());
    assert!(buckets.get("photos", "kept", None).await.unwrap().bytes == whole);
}

/// A completion cut off before its commit (the process killed) leaves the
/// parts linked into a composite blob nothing refers to: the sweep at the
/// next start removes it, and the upload, whose files were never moved,
/// completes whole.
#[tokio::test]
async fn a_completion_cut_off_before_its_commit_leaves_the_upload_whole_for_after_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("buckets");
    let bytes = pattern(3, MIN_PART_BYTES as usize);
    let (id, chosen) = {
        let (buckets, _) = open(dir.path()).await;
        let upload = buckets
            .create_upload("photos", "k", PutOptions::default())
            .await
            .unwrap();
        let part = buckets
            .put_part("photos", "k", &upload.id, 1, Bytes::from(bytes.clone()))
            .await
            .unwrap();
        (upload.id, vec![(1, part.etag)])
    };
    // What the completion had done when it was killed: its composite made
    // of the part's file, not committed.
    let staged = root.join("_uploads").join(&id);
    let data = inodes(&staged)
        .into_keys()
        .find(|name| name.split('.').count() == 2 && name != "upload.json")
        .unwrap();
    let left = root.join("photos").join(format!("{:032x}-1", 9));
    std::fs::create_dir(&left).unwrap();
    std::fs::hard_link(
        staged.join(&data),
        left.join(format!("00001.{}", bytes.len())),
    )
    .unwrap();

    let (buckets, _) = open(dir.path()).await;
    assert_eq!(buckets.sweep_orphans_at_start().await.unwrap(), 1);
    assert!(!left.exists());
    let object = buckets
        .complete_upload("photos", "k", &id, &chosen, None)
        .await
        .unwrap();
    assert_eq!(object.size, bytes.len() as u64);
    assert!(buckets.get("photos", "k", None).await.unwrap().bytes == bytes);
}

/// A bucket store that, once told to, answers no commit: the commit is
/// made (as the store makes every commit it was sent, whoever still waits
/// for its answer), said so on the channel, and its caller left waiting.
/// Or, told to hold one, says it has reached a commit and makes it only
/// once let go.
struct CommitsUnanswered {
    inner: Arc<SqliteStore>,
    made: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    held: std::sync::Mutex<Option<Held>>,
}

struct Held {
    reached: tokio::sync::oneshot::Sender<()>,
    let_go: tokio::sync::oneshot::Receiver<()>,
}

#[async_trait::async_trait]
impl nimbus_store::BucketStore for CommitsUnanswered {
    async fn begin_upload(
        &self,
        bucket: &str,
        blob: &str,
        uploader: &str,
    ) -> nimbus_store::StoreResult<()> {
        self.inner.begin_upload(bucket, blob, uploader).await
    }
    async fn abandon_upload(&self, bucket: &str, blob: &str) -> nimbus_store::StoreResult<()> {
        self.inner.abandon_upload(bucket, blob).await
    }
    async fn expire_uploads(&self, older_than_ms: u64) -> nimbus_store::StoreResult<u64> {
        self.inner.expire_uploads(older_than_ms).await
    }
    async fn abandon_uploads_of(&self, uploader: &str) -> nimbus_store::StoreResult<u64> {
        self.inner.abandon_uploads_of(uploader).await
    }
    async fn commit_put(
        &self,
        bucket: &str,
        object: nimbus_store::NewObject,
        events: nimbus_store::EventsFor,
    ) -> nimbus_store::StoreResult<nimbus_store::ObjectPutOutcome> {
        let held = self.held.lock().unwrap().take();
        if let Some(held) = held {
            let _ = held.reached.send(());
            let _ = held.let_go.await;
        }
        let outcome = self.inner.commit_put(bucket, object, events).await;
        let made = self.made.lock().unwrap().take();
        match made {
            Some(made) => {
                let _ = made.send(());
                std::future::pending().await
            }
            None => outcome,
        }
    }
    async fn commit_delete(
        &self,
        bucket: &str,
        key: &str,
        events: nimbus_store::EventsFor,
    ) -> nimbus_store::StoreResult<Option<nimbus_store::ObjectMeta>> {
        self.inner.commit_delete(bucket, key, events).await
    }
    async fn object(
        &self,
        bucket: &str,
        key: &str,
    ) -> nimbus_store::StoreResult<Option<nimbus_store::ObjectMeta>> {
        self.inner.object(bucket, key).await
    }
    async fn list_objects(
        &self,
        bucket: &str,
        query: nimbus_store::ListQuery,
    ) -> nimbus_store::StoreResult<nimbus_store::ListPage> {
        self.inner.list_objects(bucket, query).await
    }
    async fn unreferenced_blobs(
        &self,
        bucket: &str,
        blobs: Vec<String>,
    ) -> nimbus_store::StoreResult<Vec<String>> {
        self.inner.unreferenced_blobs(bucket, blobs).await
    }
    async fn delete_bucket(
        &self,
        bucket: &str,
    ) -> nimbus_store::StoreResult<Option<nimbus_store::BucketDeleted>> {
        self.inner.delete_bucket(bucket).await
    }
    async fn buckets_with_objects(&self) -> nimbus_store::StoreResult<Vec<String>> {
        self.inner.buckets_with_objects().await
    }
}

/// A caller that goes away while its upload's commit is under way (a
/// client disconnecting during CompleteMultipartUpload or a PUT) may leave
/// the commit made: the store runs every commit it was sent. The object it
/// committed must keep its bytes: the blob given up on the drop would be
/// the one the object now refers to, and the object it replaced is gone.
#[tokio::test]
async fn a_caller_gone_during_the_commit_leaves_the_committed_object_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sqlite) = open(dir.path()).await;
    let app = App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap();
    let store = Arc::new(CommitsUnanswered {
        inner: sqlite,
        made: std::sync::Mutex::new(None),
        held: std::sync::Mutex::new(None),
    });
    let buckets = Buckets::open(&app, &dir.path().join("buckets"), store.clone()).unwrap();
    let cut_off = |store: &CommitsUnanswered| {
        let (made, told) = tokio::sync::oneshot::channel();
        *store.made.lock().unwrap() = Some(made);
        told
    };

    // A completion.
    let parts = [pattern(1, MIN_PART_BYTES as usize), pattern(2, 77)];
    let (upload, chosen) = common::upload_with_parts(&buckets, "photos", "big", &parts).await;
    let told = cut_off(&store);
    let mut completing =
        Box::pin(buckets.complete_upload("photos", "big", &upload.id, &chosen, None));
    tokio::select! {
        _ = &mut completing => panic!("a commit left unanswered was answered"),
        _ = told => {}
    }
    drop(completing);
    buckets.cleanups_settled().await;
    let got = buckets.get("photos", "big", None).await;
    assert!(
        got.is_ok_and(|got| got.bytes == parts.concat()),
        "the committed completion lost its bytes"
    );

    // A plain put.
    let told = cut_off(&store);
    let mut putting = Box::pin(buckets.put(
        "photos",
        "small",
        Bytes::from_static(b"kept"),
        PutOptions::default(),
    ));
    tokio::select! {
        _ = &mut putting => panic!("a commit left unanswered was answered"),
        _ = told => {}
    }
    drop(putting);
    buckets.cleanups_settled().await;
    let got = buckets.get("photos", "small", None).await;
    assert!(
        got.is_ok_and(|got| &got.bytes[..] == b"kept"),
        "the committed put lost its bytes"
    );
}

/// Of a part sent twice, the completion takes the one whose ETag it names;
/// an object of one empty part reads back empty; ranges that begin or end
/// exactly on a part's boundary read the right bytes.
#[tokio::test]
async fn a_completion_takes_the_part_it_names_and_boundaries_read_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _) = open(dir.path()).await;
    let upload = buckets
        .create_upload("photos", "k", PutOptions::default())
        .await
        .unwrap();
    let first = pattern(5, MIN_PART_BYTES as usize);
    let earlier = buckets
        .put_part("photos", "k", &upload.id, 1, Bytes::from(first.clone()))
        .await
        .unwrap();
    buckets
        .put_part("photos", "k", &upload.id, 1, Bytes::from(pattern(6, 100)))
        .await
        .unwrap();
    let last = pattern(7, 10);
    let second = buckets
        .put_part("photos", "k", &upload.id, 2, Bytes::from(last.clone()))
        .await
        .unwrap();
    let object = buckets
        .complete_upload(
            "photos",
            "k",
            &upload.id,
            &[(1, earlier.etag.clone()), (2, second.etag.clone())],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        object.etag,
        multipart_etag([earlier.etag.as_str(), second.etag.as_str()]).unwrap()
    );
    let whole = [first.clone(), last.clone()].concat();
    assert!(buckets.get("photos", "k", None).await.unwrap().bytes == whole);
    let boundary = first.len() as u64;
    for (start, end) in [
        (boundary - 4, boundary),
        (boundary, boundary + 3),
        (boundary - 1, boundary + 1),
        (boundary, whole.len() as u64),
        (whole.len() as u64 - 1, whole.len() as u64),
    ] {
        let range = ByteRange::From {
            first: start,
            last: Some(end - 1),
        };
        let got = buckets.get("photos", "k", Some(range)).await.unwrap();
        assert!(
            got.bytes[..] == whole[start as usize..end as usize],
            "{start}..{end} read back differs"
        );
    }

    let empty = buckets
        .create_upload("photos", "empty", PutOptions::default())
        .await
        .unwrap();
    let part = buckets
        .put_part("photos", "empty", &empty.id, 1, Bytes::new())
        .await
        .unwrap();
    let object = buckets
        .complete_upload("photos", "empty", &empty.id, &[(1, part.etag)], None)
        .await
        .unwrap();
    assert_eq!(object.size, 0);
    assert!(
        buckets
            .get("photos", "empty", None)
            .await
            .unwrap()
            .bytes
            .is_empty()
    );
}

/// Between a completion's composite made of the staged parts and its
/// commit, neither the orphan sweep nor the sweep of old uploads (here
/// taking every upload) takes any of the object's bytes: the composite is
/// registered, and its parts are links of their own to the staged files.
#[tokio::test]
async fn the_sweeps_between_a_completions_composite_and_its_commit_take_none_of_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sqlite) = open(dir.path()).await;
    let app = App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap();
    let store = Arc::new(CommitsUnanswered {
        inner: sqlite,
        made: std::sync::Mutex::new(None),
        held: std::sync::Mutex::new(None),
    });
    let buckets = Buckets::open(&app, &dir.path().join("buckets"), store.clone()).unwrap();
    let parts = [pattern(11, MIN_PART_BYTES as usize), pattern(12, 4321)];
    let (upload, chosen) = common::upload_with_parts(&buckets, "photos", "k", &parts).await;
    let (reached, reached_rx) = tokio::sync::oneshot::channel();
    let (let_go, let_go_rx) = tokio::sync::oneshot::channel();
    *store.held.lock().unwrap() = Some(Held {
        reached,
        let_go: let_go_rx,
    });
    let completing = buckets.complete_upload("photos", "k", &upload.id, &chosen, None);
    let sweeping = async {
        reached_rx.await.unwrap();
        assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
        assert_eq!(buckets.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
        let_go.send(()).unwrap();
    };
    let (object, ()) = tokio::join!(completing, sweeping);
    let object = object.unwrap();
    assert_eq!(object.size, (parts[0].len() + parts[1].len()) as u64);
    let got = buckets.get("photos", "k", None).await.unwrap();
    assert!(got.bytes == parts.concat(), "the object read back differs");
    assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
    let got = buckets.get("photos", "k", None).await.unwrap();
    assert!(
        got.bytes == parts.concat(),
        "the sweep took the object's bytes"
    );
}
