//! `Buckets` over the SQLite store and a scratch directory: bytes, ranges,
//! refused keys and sizes, events with the object, the orphan sweep, and
//! buckets a new version drops: read until deleted, then gone with their
//! blobs; streamed uploads refused or cut off leave nothing; a streamed
//! read outlives its blob's removal, and fails on a blob cut short.

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use nimbus_bucket::{BucketError, Buckets, ByteRange, Checksums, PutOptions, UploadError};
use nimbus_manifest::App;
use nimbus_store::{BucketStore as _, ListQuery, QueueStore, SystemClock};
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
max_object_bytes = 16

[[trigger.object]]
bucket = "photos"
function = "f"
prefix = "in/"
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
async fn objects_round_trip_with_ranges_and_their_events_name_the_sequencer() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, store) = open(dir.path()).await;
    let options = PutOptions {
        content_type: Some("text/plain".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..PutOptions::default()
    };
    let meta = buckets
        .put(
            "photos",
            "in/a.txt",
            Bytes::from_static(b"hello world"),
            options,
        )
        .await
        .unwrap();
    assert_eq!(meta.size, 11);
    let got = buckets.get("photos", "in/a.txt", None).await.unwrap();
    assert_eq!(got.bytes, "hello world");
    let part = buckets
        .get("photos", "in/a.txt", Some(ByteRange::Suffix(5)))
        .await
        .unwrap();
    assert_eq!(
        (part.bytes.as_ref(), part.range),
        (&b"world"[..], Some(6..11))
    );
    let beyond = buckets
        .get(
            "photos",
            "in/a.txt",
            Some(ByteRange::From {
                first: 11,
                last: None,
            }),
        )
        .await;
    assert!(matches!(
        beyond,
        Err(BucketError::RangeNotSatisfiable { size: 11 })
    ));

    buckets
        .put(
            "photos",
            "out/b.txt",
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(buckets.delete("photos", "in/a.txt", None).await.unwrap());
    assert!(!buckets.delete("photos", "in/a.txt", None).await.unwrap());

    let events = store.receive("_object.f.photos", 10, None).await.unwrap();
    let types: Vec<&str> = events
        .iter()
        .map(|m| m.attributes["ce-type"].as_str())
        .collect();
    assert_eq!(types, ["nimbus.object.created", "nimbus.object.removed"]);
    assert_eq!(events[0].attributes["ce-subject"], "in/a.txt");
    assert!(events[0].attributes["traceparent"].contains("0af7651916cd43dd8448eb211c80319c"));
    let body: serde_json::Value = serde_json::from_slice(&events[0].body).unwrap();
    assert_eq!(body["key"], "in/a.txt");
    assert_eq!(body["etag"], meta.etag);
    assert_eq!(
        body["sequencer"],
        nimbus_bucket::sequencer_text(meta.sequencer)
    );
}

#[tokio::test]
async fn hostile_keys_and_oversize_bodies_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _store) = open(dir.path()).await;
    for key in ["../x", "/abs", "a\0b", "a/./b", "a\\b", ""] {
        let put = buckets
            .put(
                "photos",
                key,
                Bytes::from_static(b"x"),
                PutOptions::default(),
            )
            .await;
        assert!(
            matches!(put, Err(BucketError::InvalidKey(_))),
            "{key:?}: {put:?}"
        );
    }
    let big = buckets
        .put(
            "photos",
            "big",
            Bytes::from(vec![0u8; 17]),
            PutOptions::default(),
        )
        .await;
    assert!(matches!(
        big,
        Err(BucketError::TooLarge {
            size: 17,
            limit: 16,
            ..
        })
    ));
    let missing = buckets
        .put("nope", "k", Bytes::new(), PutOptions::default())
        .await;
    assert!(matches!(missing, Err(BucketError::NoSuchBucket(_))));
    let blobs = std::fs::read_dir(dir.path().join("buckets/photos"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "a refused upload wrote something");
}

#[tokio::test]
async fn the_sweep_removes_unreferenced_blobs_and_keeps_objects() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _store) = open(dir.path()).await;
    buckets
        .put(
            "photos",
            "kept",
            Bytes::from_static(b"kept"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    // Left by an upload killed before its commit, and one cut off while
    // object_store was staging it.
    let bucket_dir = dir.path().join("buckets/photos");
    std::fs::write(
        bucket_dir.join("0192aaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        b"orphan",
    )
    .unwrap();
    std::fs::write(
        bucket_dir.join("0192bbbbbbbbbbbbbbbbbbbbbbbbbbbb#1"),
        b"staged",
    )
    .unwrap();
    assert_eq!(
        buckets
            .sweep_orphans(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(std::fs::read_dir(&bucket_dir).unwrap().count(), 1);
    let kept = buckets.get("photos", "kept", None).await.unwrap();
    assert_eq!(kept.bytes, "kept");
    let listed = buckets
        .list(
            "photos",
            ListQuery {
                limit: 10,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_replacements_and_deletes_see_whole_objects_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _store) = open(dir.path()).await;
    let buckets = Arc::new(buckets);
    buckets
        .put(
            "photos",
            "hot",
            Bytes::from_static(b"0"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let writer = {
        let buckets = buckets.clone();
        tokio::spawn(async move {
            for n in 1..200usize {
                let body = Bytes::from(vec![b'a' + (n % 26) as u8; 1 + n % 16]);
                if n % 10 == 0 {
                    buckets.delete("photos", "hot", None).await.unwrap();
                } else {
                    buckets
                        .put("photos", "hot", body, PutOptions::default())
                        .await
                        .unwrap();
                }
            }
        })
    };
    while !writer.is_finished() {
        match buckets.get("photos", "hot", None).await {
            Ok(got) => {
                assert_eq!(got.bytes.len() as u64, got.meta.size);
                assert!(got.bytes.iter().all(|b| *b == got.bytes[0]));
            }
            Err(BucketError::NoSuchKey(_)) => {}
            Err(e) => panic!("a read saw a torn object: {e}"),
        }
    }
    writer.await.unwrap();
}

/// The first version's buckets: `photos` and `old`, which the second drops.
const WITH_OLD: &str = r#"
[app]
name = "t"

[bucket.photos]

[bucket.old]
"#;

/// `photos` only, as [`MANIFEST`] without its trigger.
const WITHOUT_OLD: &str = r#"
[app]
name = "t"

[bucket.photos]
"#;

fn parse(manifest: &str) -> App {
    App::parse(Path::new("nimbus.toml"), manifest).unwrap()
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

#[tokio::test]
async fn a_dropped_bucket_is_read_until_deleted_and_deleting_takes_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = open(dir.path()).await;
    let root = dir.path().join("buckets");
    let first = Buckets::open(&parse(WITH_OLD), &root, store.clone()).unwrap();
    for (key, bytes) in [("a", "one"), ("b/c", "three")] {
        first
            .put(
                "old",
                key,
                Bytes::from_static(bytes.as_bytes()),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    first
        .put(
            "photos",
            "p",
            Bytes::from_static(b"p"),
            PutOptions::default(),
        )
        .await
        .unwrap();

    // The second version no longer declares `old`: its objects are read,
    // not written.
    let second = first.for_app(&parse(WITHOUT_OLD)).await.unwrap();
    assert_eq!(second.get("old", "b/c", None).await.unwrap().bytes, "three");
    let listed = second
        .list(
            "old",
            ListQuery {
                limit: 10,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 2);
    let put = second
        .put(
            "old",
            "new",
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await;
    assert!(matches!(put, Err(BucketError::NoSuchBucket(_))), "{put:?}");
    assert!(matches!(
        second
            .list(
                "never",
                ListQuery {
                    limit: 1,
                    ..ListQuery::default()
                }
            )
            .await,
        Err(BucketError::NoSuchBucket(_))
    ));

    // A declared bucket is not deleted.
    assert!(matches!(
        second.delete_bucket("photos").await,
        Err(BucketError::Declared(_))
    ));
    let deleted = second.delete_bucket("old").await.unwrap();
    assert_eq!(
        (deleted.objects, deleted.bytes, deleted.blobs_removed),
        (2, 8, 2)
    );
    assert!(!root.join("old").exists(), "the bucket's directory is left");
    assert!(matches!(
        second.get("old", "a", None).await,
        Err(BucketError::NoSuchBucket(_))
    ));
    assert!(matches!(
        second.delete_bucket("old").await,
        Err(BucketError::NoSuchBucket(_))
    ));
    assert_eq!(second.get("photos", "p", None).await.unwrap().bytes, "p");
    assert_eq!(files(&root.join("photos")), 1);
}

/// A process that dies after deleting a bucket's metadata and before
/// removing its blobs leaves them to the orphan sweep, which visits every
/// bucket the storage holds; a dropped bucket's blobs, still referenced,
/// stay.
#[tokio::test]
async fn the_sweep_takes_the_blobs_a_bucket_deletion_left_and_keeps_a_dropped_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = open(dir.path()).await;
    let root = dir.path().join("buckets");
    let with_two = "[app]\nname = \"t\"\n[bucket.photos]\n[bucket.old]\n[bucket.gone]\n";
    let first = Buckets::open(&parse(with_two), &root, store.clone()).unwrap();
    for bucket in ["old", "gone"] {
        first
            .put(
                bucket,
                "k",
                Bytes::from_static(b"bytes"),
                PutOptions::default(),
            )
            .await
            .unwrap();
    }
    // The metadata of `gone` deleted, then the process died.
    let second = first.for_app(&parse(WITHOUT_OLD)).await.unwrap();
    nimbus_store::BucketStore::delete_bucket(store.as_ref(), "gone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(files(&root.join("gone")), 1);

    assert_eq!(second.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(files(&root.join("gone")), 0);
    assert_eq!(files(&root.join("old")), 1);
    assert_eq!(second.get("old", "k", None).await.unwrap().bytes, "bytes");
}

/// A streamed upload refused as it passes the limit, refused by its
/// caller's check once read, or cut off (its future dropped mid-body)
/// leaves no object and, once given up, no blob; the bucket then takes
/// an upload as before.
#[tokio::test]
async fn streamed_uploads_refused_or_cut_off_leave_no_object_and_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, _store) = open(dir.path()).await;
    let blobs = dir.path().join("buckets/photos");
    let chunks = || {
        futures::stream::iter(
            [&b"0123456789"[..], b"0123456789"].map(|c| Ok::<_, &str>(Bytes::from_static(c))),
        )
    };
    let over = buckets
        .put_stream("photos", "k", chunks(), PutOptions::default(), |_, _| {
            Ok(Checksums::default())
        })
        .await;
    assert!(matches!(
        over,
        Err(UploadError::Bucket(BucketError::TooLarge { limit: 16, .. }))
    ));
    let body = futures::stream::iter([Ok::<_, &str>(Bytes::from_static(b"checked"))]);
    let refused = buckets
        .put_stream("photos", "k", body, PutOptions::default(), |_, written| {
            assert_eq!(written.md5.map(|m| m.len()), Some(16));
            Err("bad digest")
        })
        .await;
    assert!(matches!(refused, Err(UploadError::Body("bad digest"))));
    assert!(matches!(
        buckets.head("photos", "k").await,
        Err(BucketError::NoSuchKey(_))
    ));
    assert_eq!(files(&blobs), 0);

    // A body that stops arriving after its first bytes, given up on once
    // its blob exists (it does before the body is read).
    let (stalled_tx, stalled) = tokio::sync::oneshot::channel();
    let mut stalled_tx = Some(stalled_tx);
    let body = futures::stream::iter([Ok::<_, &str>(Bytes::from_static(b"first"))]).chain(
        futures::stream::poll_fn(move |_| {
            if let Some(tx) = stalled_tx.take() {
                let _ = tx.send(());
            }
            std::task::Poll::Pending
        }),
    );
    let upload = buckets.put_stream("photos", "k", body, PutOptions::default(), |_, _| {
        Ok(Checksums::default())
    });
    tokio::select! {
        _ = upload => panic!("a stalled body finished"),
        _ = stalled => {}
    }
    assert_eq!(files(&blobs), 1);
    buckets.cleanups_settled().await;
    assert_eq!(files(&blobs), 0);
    assert!(matches!(
        buckets.head("photos", "k").await,
        Err(BucketError::NoSuchKey(_))
    ));
    let put = buckets
        .put(
            "photos",
            "k",
            Bytes::from_static(b"fits"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(put.size, 4);
}

/// A read opened before its object is replaced (which removes the blob) or
/// swept still delivers the bytes it opened; one whose blob turns out
/// shorter than its object ends with an error, never early as if whole.
#[tokio::test]
async fn an_open_read_outlives_its_blobs_removal_and_a_short_blob_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let (buckets, store) = open(dir.path()).await;
    let blobs = dir.path().join("buckets/photos");
    let put = |bytes: &'static [u8]| {
        buckets.put(
            "photos",
            "k",
            Bytes::from_static(bytes),
            PutOptions::default(),
        )
    };
    put(b"first bytes").await.unwrap();
    let opened = buckets
        .get_stream(
            "photos",
            "k",
            Some(ByteRange::From {
                first: 6,
                last: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(opened.content_length(), 5);
    assert_eq!(opened.range, Some(6..11));
    let old_blob = blobs.join(&opened.meta.blob);
    put(b"second").await.unwrap();
    assert!(!old_blob.exists(), "the replaced blob is still there");
    let read: Vec<Bytes> = opened.body.try_collect().await.unwrap();
    assert_eq!(read.concat(), b"bytes");

    // The sweep removing a blob mid-read: its object's metadata gone as a
    // process that died before removing the blob leaves it, so the blob is
    // an orphan the sweep (no grace) takes.
    let opened = buckets.get_stream("photos", "k", None).await.unwrap();
    let orphan = blobs.join(&opened.meta.blob);
    store
        .commit_delete("photos", "k", Box::new(|_| Vec::new()))
        .await
        .unwrap();
    assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(!orphan.exists(), "the sweep left the orphan");
    let read: Vec<Bytes> = opened.body.try_collect().await.unwrap();
    assert_eq!(read.concat(), b"second");

    put(b"second").await.unwrap();
    let current = blobs.join(buckets.head("photos", "k").await.unwrap().blob);
    std::fs::write(&current, b"sec").unwrap();
    let cut = buckets.get_stream("photos", "k", None).await.unwrap();
    let read: Result<Vec<Bytes>, _> = cut.body.try_collect().await;
    assert!(
        matches!(read, Err(BucketError::Blob(ref why)) if why.contains("short")),
        "{read:?}"
    );
    assert!(matches!(
        buckets.get("photos", "k", None).await,
        Err(BucketError::Blob(_))
    ));
}
