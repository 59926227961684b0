//! `Buckets` with object bytes on S3 (a private SeaweedFS for this test
//! process, a fresh key prefix per test): bytes and ranges, replaced and
//! removed objects taking their blobs along, settings that do not work
//! refused at open without the secret, and the orphan sweep of one node
//! sparing another node's upload in flight (two PostgreSQL handles on one
//! schema, as two nodes share one database) until its registration expires,
//! and anything under the prefix that Nimbus did not write; a dropped
//! bucket deleted with its blobs, and the blobs of one whose deletion was
//! cut off taken by the sweep; an upload cut off mid-body leaving no
//! multipart upload in progress on the service; a completed upload made of
//! its parts copied server-side, read across their boundaries.

mod common;

use bytes::Bytes;
use futures::TryStreamExt as _;
use nimbus_bucket::{
    BlobStorage, BucketError, Buckets, ByteRange, PutOptions, S3Config, S3Location, UPLOAD_BOUND,
};
use nimbus_manifest::App;
use nimbus_store::{BucketStore, ManualClock, NewObject, StoreError, SystemClock};
use nimbus_store_postgres::{DEFAULT_POOL_SIZE, PgOptions, PgStore};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use object_store::ObjectStore as _;
use object_store::path::Path as BlobPath;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const MANIFEST: &str = r#"
[app]
name = "t"

[bucket.photos]
max_object_bytes = 64
"#;

fn app() -> App {
    App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap()
}

fn config(location: &str) -> S3Config {
    let server = nimbus_test_s3::server();
    S3Config::with_static_credentials(
        S3Location::parse(location).unwrap(),
        Some(server.endpoint()),
        Some(nimbus_test_s3::REGION),
        nimbus_test_s3::ACCESS_KEY_ID,
        nimbus_test_s3::SECRET_ACCESS_KEY,
    )
}

/// The S3 client the test inspects the bucket with, behind Nimbus's back.
fn raw_client() -> object_store::aws::AmazonS3 {
    let server = nimbus_test_s3::server();
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(nimbus_test_s3::BUCKET)
        .with_region(nimbus_test_s3::REGION)
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_access_key_id(nimbus_test_s3::ACCESS_KEY_ID)
        .with_secret_access_key(nimbus_test_s3::SECRET_ACCESS_KEY)
        .build()
        .unwrap()
}

/// The blob names under `location`'s `photos` bucket.
async fn blobs(location: &str) -> Vec<String> {
    bucket_blobs(location, "photos").await
}

/// The blob names under `location`'s `bucket`.
async fn bucket_blobs(location: &str, bucket: &str) -> Vec<String> {
    let prefix = S3Location::parse(location).unwrap().prefix;
    let listed: Vec<_> = raw_client()
        .list(Some(&BlobPath::from(format!("{prefix}/{bucket}"))))
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<String> = listed
        .into_iter()
        .map(|m| m.location.filename().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Writes `bytes` as blob `name` of `photos`, as an upload does before its
/// commit.
async fn write_blob(location: &str, name: &str, bytes: &'static [u8]) {
    let prefix = S3Location::parse(location).unwrap().prefix;
    raw_client()
        .put(
            &BlobPath::from(format!("{prefix}/photos/{name}")),
            Bytes::from_static(bytes).into(),
        )
        .await
        .unwrap();
}

async fn sqlite_buckets(dir: &Path, location: &str) -> Buckets {
    let options = SqliteOptions {
        path: dir.join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    Buckets::open_in(&app(), &BlobStorage::S3(Box::new(config(location))), store)
        .await
        .unwrap()
}

#[tokio::test]
async fn objects_on_s3_round_trip_with_ranges_and_take_their_blobs_when_replaced_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let location = nimbus_test_s3::server().fresh_location();
    let buckets = sqlite_buckets(dir.path(), &location).await;
    assert!(
        buckets.storage().contains(&location),
        "{}",
        buckets.storage()
    );

    let first = buckets
        .put(
            "photos",
            "in/a.txt",
            Bytes::from_static(b"hello world"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(blobs(&location).await, [first.blob.as_str()]);
    let got = buckets.get("photos", "in/a.txt", None).await.unwrap();
    assert_eq!(got.bytes, "hello world");
    let middle = buckets
        .get(
            "photos",
            "in/a.txt",
            Some(ByteRange::From {
                first: 2,
                last: Some(4),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        (middle.bytes.as_ref(), middle.range),
        (&b"llo"[..], Some(2..5))
    );
    let tail = buckets
        .get("photos", "in/a.txt", Some(ByteRange::Suffix(5)))
        .await
        .unwrap();
    assert_eq!(tail.bytes, "world");
    let open_ended = buckets
        .get(
            "photos",
            "in/a.txt",
            Some(ByteRange::From {
                first: 6,
                last: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(open_ended.bytes, "world");

    let second = buckets
        .put(
            "photos",
            "in/a.txt",
            Bytes::from_static(b"bye"),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_ne!(second.blob, first.blob);
    assert_eq!(blobs(&location).await, [second.blob.as_str()]);
    assert_eq!(
        buckets.get("photos", "in/a.txt", None).await.unwrap().bytes,
        "bye"
    );
    assert!(buckets.delete("photos", "in/a.txt", None).await.unwrap());
    assert!(blobs(&location).await.is_empty());
    assert!(matches!(
        buckets.get("photos", "in/a.txt", None).await,
        Err(BucketError::NoSuchKey(_))
    ));
}

#[tokio::test]
async fn settings_that_do_not_reach_the_bucket_fail_at_open_without_the_secret() {
    let server = nimbus_test_s3::server();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            &SqliteOptions {
                path: dir.path().join("nimbus.db"),
                durability: Durability::Fsync,
            },
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let secret = "a-wrong-secret-that-must-not-show";
    let wrong_secret = S3Config::with_static_credentials(
        S3Location::parse(&server.fresh_location()).unwrap(),
        Some(server.endpoint()),
        None,
        nimbus_test_s3::ACCESS_KEY_ID,
        secret,
    );
    let missing_bucket = S3Config::with_static_credentials(
        S3Location::parse("s3://no-such-bucket/x").unwrap(),
        Some(server.endpoint()),
        None,
        nimbus_test_s3::ACCESS_KEY_ID,
        nimbus_test_s3::SECRET_ACCESS_KEY,
    );
    for config in [wrong_secret, missing_bucket] {
        let opened =
            Buckets::open_in(&app(), &BlobStorage::S3(Box::new(config)), store.clone()).await;
        let Err(e) = opened else {
            panic!("settings that cannot work were accepted");
        };
        let message = e.to_string();
        assert!(message.contains("cannot list s3://"), "{message}");
        assert!(message.contains(server.endpoint()), "{message}");
        assert!(!message.contains(secret), "{message}");
    }
}

/// A node: buckets over its own PostgreSQL handle, on the shared schema,
/// S3 prefix and test clock.
async fn pg_node(url: &str, clock: &ManualClock, location: &str) -> (Buckets, Arc<PgStore>) {
    let options = PgOptions {
        url: url.to_owned(),
        relaxed_durability: false,
        pool_size: DEFAULT_POOL_SIZE,
    };
    let store = Arc::new(
        PgStore::connect(&options, Some(Arc::new(clock.clone())))
            .await
            .unwrap(),
    );
    let buckets = Buckets::open_in(
        &app(),
        &BlobStorage::S3(Box::new(config(location))),
        store.clone(),
    )
    .await
    .unwrap();
    (buckets, store)
}

/// Blob names as uploads make them (32 hex digits).
const IN_FLIGHT: &str = "0192aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ORPHAN: &str = "0192bbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CRASHED: &str = "0192cccccccccccccccccccccccccccc";

fn new_object(key: &str, blob: &str, size: u64) -> NewObject {
    NewObject {
        key: key.to_owned(),
        size,
        etag: "etag".to_owned(),
        content_type: "text/plain".to_owned(),
        user_metadata: Default::default(),
        blob: blob.to_owned(),
    }
}

#[tokio::test]
async fn a_restarted_node_sweeps_what_its_killed_predecessor_left_in_flight_at_once() {
    let url = nimbus_test_postgres::server().fresh_url();
    let location = nimbus_test_s3::server().fresh_location();
    let clock = ManualClock::new(1_700_000_000_000);
    let (killed, killed_store) = pg_node(&url, &clock, &location).await;
    let (_other, other_store) = pg_node(&url, &clock, &location).await;
    // node-a dies between its put to S3 and its commit, while node-b is
    // mid-upload too.
    killed_store
        .begin_upload("photos", CRASHED, "node-a")
        .await
        .unwrap();
    write_blob(&location, CRASHED, b"cut").await;
    drop(killed);
    other_store
        .begin_upload("photos", IN_FLIGHT, "node-b")
        .await
        .unwrap();
    write_blob(&location, IN_FLIGHT, b"fresh").await;

    // node-a comes back: its own leftover goes now, not after the bound;
    // node-b's upload stays.
    let (restarted, _) = pg_node(&url, &clock, &location).await;
    let restarted = restarted.with_uploader("node-a");
    assert_eq!(restarted.sweep_orphans_at_start().await.unwrap(), 1);
    assert_eq!(blobs(&location).await, [IN_FLIGHT.to_owned()]);
}

#[tokio::test]
async fn one_nodes_sweep_spares_another_nodes_upload_in_flight_until_its_registration_expires() {
    let url = nimbus_test_postgres::server().fresh_url();
    let location = nimbus_test_s3::server().fresh_location();
    let clock = ManualClock::new(1_700_000_000_000);
    let (uploader, uploader_store) = pg_node(&url, &clock, &location).await;
    let (sweeper, _sweeper_store) = pg_node(&url, &clock, &location).await;
    let kept = uploader
        .put(
            "photos",
            "kept",
            Bytes::from_static(b"kept"),
            PutOptions::default(),
        )
        .await
        .unwrap();

    // The uploader between its put to S3 and its commit; a blob no upload
    // owns (left by an upload whose registration ended); and files someone
    // else put under the prefix, which are not Nimbus's to remove.
    uploader_store
        .begin_upload("photos", IN_FLIGHT, "node-up")
        .await
        .unwrap();
    write_blob(&location, IN_FLIGHT, b"fresh").await;
    write_blob(&location, ORPHAN, b"lost").await;
    write_blob(&location, "README.txt", b"not a blob").await;
    write_blob(&location, &format!("nested/{ORPHAN}"), b"not here").await;

    assert_eq!(sweeper.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    let mut expected = vec![
        IN_FLIGHT.to_owned(),
        kept.blob.clone(),
        "README.txt".to_owned(),
        ORPHAN.to_owned(),
    ];
    expected.sort();
    assert_eq!(blobs(&location).await, expected);

    // The upload commits after the sweep: its object reads whole anywhere.
    uploader_store
        .commit_put(
            "photos",
            new_object("late", IN_FLIGHT, 5),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        sweeper.get("photos", "late", None).await.unwrap().bytes,
        "fresh"
    );

    // A node that dies mid-upload pins its blob only until the bound.
    uploader_store
        .begin_upload("photos", CRASHED, "node-up")
        .await
        .unwrap();
    write_blob(&location, CRASHED, b"cut").await;
    drop(uploader);
    assert_eq!(sweeper.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
    clock.advance_ms(UPLOAD_BOUND.as_millis() as u64);
    assert_eq!(sweeper.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(!blobs(&location).await.contains(&CRASHED.to_owned()));
    // ...and its commit, should it come after all, refers to nothing.
    let late = uploader_store
        .commit_put(
            "photos",
            new_object("crashed", CRASHED, 3),
            Box::new(|_| Vec::new()),
        )
        .await;
    assert_eq!(
        late,
        Err(StoreError::UploadNotRegistered(CRASHED.to_owned()))
    );
    assert_eq!(
        sweeper.get("photos", "kept", None).await.unwrap().bytes,
        "kept"
    );
}

#[tokio::test]
async fn deleting_a_dropped_bucket_on_s3_takes_its_blobs_and_the_sweep_finishes_a_cut_off_one() {
    let dir = tempfile::tempdir().unwrap();
    let location = nimbus_test_s3::server().fresh_location();
    let options = SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let storage = BlobStorage::S3(Box::new(config(&location)));
    let with_old = App::parse(
        Path::new("nimbus.toml"),
        "[app]\nname = \"t\"\n[bucket.photos]\n[bucket.old]\n[bucket.gone]\n",
    )
    .unwrap();
    let first = Buckets::open_in(&with_old, &storage, store.clone())
        .await
        .unwrap();
    for bucket in ["old", "gone"] {
        for key in ["a", "b"] {
            first
                .put(
                    bucket,
                    key,
                    Bytes::from_static(b"bytes"),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
    }
    let second = first.for_app(&app()).await.unwrap();
    assert_eq!(second.get("old", "a", None).await.unwrap().bytes, "bytes");

    let deleted = second.delete_bucket("old").await.unwrap();
    assert_eq!((deleted.objects, deleted.blobs_removed), (2, 2));
    assert!(bucket_blobs(&location, "old").await.is_empty());

    // `gone`'s metadata deleted, then the process died; the sweep visits
    // it though no version declares it, and leaves what is not a blob.
    BucketStore::delete_bucket(store.as_ref(), "gone")
        .await
        .unwrap()
        .unwrap();
    let prefix = S3Location::parse(&location).unwrap().prefix;
    raw_client()
        .put(
            &BlobPath::from(format!("{prefix}/gone/README.txt")),
            Bytes::from_static(b"not a blob").into(),
        )
        .await
        .unwrap();
    assert_eq!(second.sweep_orphans(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(bucket_blobs(&location, "gone").await, ["README.txt"]);
}

/// The files of multipart uploads under `location`.
async fn staged(location: &str) -> Vec<String> {
    let prefix = S3Location::parse(location).unwrap().prefix;
    let listed: Vec<_> = raw_client()
        .list(Some(&BlobPath::from(format!("{prefix}/_uploads"))))
        .try_collect()
        .await
        .unwrap();
    listed.into_iter().map(|m| m.location.to_string()).collect()
}

#[tokio::test]
async fn multipart_parts_on_s3_outlive_the_orphan_sweep_and_go_when_completed_or_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let location = nimbus_test_s3::server().fresh_location();
    let buckets = sqlite_buckets(dir.path(), &location).await;
    let upload = buckets
        .create_upload("photos", "multi", PutOptions::default())
        .await
        .unwrap();
    let part = buckets
        .put_part(
            "photos",
            "multi",
            &upload.id,
            1,
            Bytes::from_static(b"parted"),
        )
        .await
        .unwrap();
    assert_eq!(
        staged(&location).await.len(),
        3,
        "its description, and its part's bytes and marker"
    );
    // Beside the buckets: the orphan sweep never looks there.
    buckets.sweep_orphans(Duration::ZERO).await.unwrap();
    // A new process over the same storage finds the upload.
    let again = sqlite_buckets(dir.path(), &location).await;
    let parts = again
        .list_parts("photos", "multi", &upload.id)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    let object = again
        .complete_upload("photos", "multi", &upload.id, &[(1, part.etag)], None)
        .await
        .unwrap();
    assert!(object.etag.ends_with("-1"), "{}", object.etag);
    assert_eq!(
        again.get("photos", "multi", None).await.unwrap().bytes,
        "parted"
    );
    assert_eq!(staged(&location).await, Vec::<String>::new());

    let abandoned = again
        .create_upload("photos", "left", PutOptions::default())
        .await
        .unwrap();
    again
        .put_part("photos", "left", &abandoned.id, 1, Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(
        again
            .sweep_uploads(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(again.sweep_uploads(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(staged(&location).await, Vec::<String>::new());
}

/// The keys of the multipart uploads in progress under `location`, as the
/// S3 service lists them (ListMultipartUploads, through boto3:
/// `object_store` has no call for it).
fn uploads_in_progress(location: &str) -> Vec<String> {
    const LIST: &str = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
listed = s3.list_multipart_uploads(Bucket=sys.argv[2], Prefix=sys.argv[3])
for upload in listed.get("Uploads", []):
    print(upload["Key"])
"#;
    let server = nimbus_test_s3::server();
    let prefix = S3Location::parse(location).unwrap().prefix;
    let output = std::process::Command::new("python3")
        .args(["-c", LIST, server.endpoint(), nimbus_test_s3::BUCKET])
        .arg(format!("{prefix}/"))
        .envs(server.env())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap_or_else(|e| panic!("python3 could not start ({e})"));
    assert!(
        output.status.success(),
        "listing the multipart uploads failed (is boto3 installed? python3 -m pip install \
         boto3, see .ci/run for the pinned version): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `Buckets` with one bucket, `large`, that takes objects of several S3
/// parts.
async fn large_buckets(dir: &Path, location: &str) -> Buckets {
    const LARGE: &str = r#"
[app]
name = "t"

[bucket.large]
max_object_bytes = 67108864
"#;
    let options = SqliteOptions {
        path: dir.join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let app = App::parse(Path::new("nimbus.toml"), LARGE).unwrap();
    Buckets::open_in(&app, &BlobStorage::S3(Box::new(config(location))), store)
        .await
        .unwrap()
}

/// An upload past one S3 part is a multipart upload, whose parts the
/// service keeps until it is completed or aborted. Cut off mid-body (its
/// future dropped: the client went away), it is aborted once given up:
/// no upload stays in progress, and no object or blob is left.
#[tokio::test]
async fn an_upload_cut_off_mid_body_leaves_no_multipart_upload_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let location = nimbus_test_s3::server().fresh_location();
    let buckets = large_buckets(dir.path(), &location).await;

    // 17 MiB: two 8 MiB parts sent, then the body stops coming.
    let chunks: Vec<Result<Bytes, &str>> = (0..17)
        .map(|i| Ok(Bytes::from(vec![i as u8; 1 << 20])))
        .collect();
    let (stalled_tx, stalled) = tokio::sync::oneshot::channel();
    let mut stalled_tx = Some(stalled_tx);
    let body = futures::StreamExt::chain(
        futures::stream::iter(chunks),
        futures::stream::poll_fn(move |_| {
            if let Some(tx) = stalled_tx.take() {
                let _ = tx.send(());
            }
            std::task::Poll::Pending
        }),
    );
    let mut upload =
        Box::pin(
            buckets.put_stream("large", "cut", body, PutOptions::default(), |_, _| {
                Ok(nimbus_bucket::Checksums::default())
            }),
        );
    tokio::select! {
        _ = &mut upload => panic!("a stalled body finished"),
        _ = stalled => {}
    }
    let in_progress = uploads_in_progress(&location);
    assert_eq!(
        in_progress.len(),
        1,
        "the upload is under way: {in_progress:?}"
    );
    drop(upload);
    buckets.cleanups_settled().await;
    assert_eq!(uploads_in_progress(&location), Vec::<String>::new());
    assert!(matches!(
        buckets.head("large", "cut").await,
        Err(BucketError::NoSuchKey(_))
    ));
    assert_eq!(bucket_blobs(&location, "large").await, Vec::<String>::new());
}

/// Completing an upload on S3 copies its parts server-side into the
/// object's blob, one object per part, which reads back whole and by
/// ranges across the parts' boundaries; deleting the object takes every
/// part along, and a composite blob nothing refers to goes with the sweep
/// (what Nimbus did not write stays).
#[tokio::test]
async fn a_completed_upload_on_s3_is_made_of_its_parts_and_reads_across_their_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let location = nimbus_test_s3::server().fresh_location();
    let buckets = large_buckets(dir.path(), &location).await;
    let min = nimbus_bucket::MIN_PART_BYTES as usize;
    let sizes = [min, min + 3, 777];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(p, size)| {
            (0..*size as u32)
                .map(|i| (i.wrapping_add(p as u32 * 7919).wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect()
        })
        .collect();
    let whole: Vec<u8> = parts.concat();
    let (upload, chosen) = common::upload_with_parts(&buckets, "large", "big", &parts).await;
    let object = buckets
        .complete_upload("large", "big", &upload.id, &chosen, None)
        .await
        .unwrap();
    assert_eq!(object.size, whole.len() as u64);
    assert!(object.etag.ends_with("-3"), "{}", object.etag);
    let files: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| format!("{:05}.{size}", i + 1))
        .collect();
    assert_eq!(bucket_blobs(&location, "large").await, files);
    assert_eq!(staged(&location).await, Vec::<String>::new());

    let got = buckets.get("large", "big", None).await.unwrap();
    assert!(got.bytes == whole, "the object read back differs");
    let (first, second) = (sizes[0] as u64, (sizes[0] + sizes[1]) as u64);
    for range in [
        ByteRange::From {
            first: first - 10,
            last: Some(first + 9),
        },
        ByteRange::From {
            first: first - 1,
            last: Some(second),
        },
        ByteRange::Suffix(sizes[2] as u64 + 100),
    ] {
        let got = buckets.get("large", "big", Some(range)).await.unwrap();
        let r = got.range.clone().unwrap();
        assert!(
            got.bytes[..] == whole[r.start as usize..r.end as usize],
            "range {range:?} read back differs"
        );
    }
    assert!(buckets.delete("large", "big", None).await.unwrap());
    assert_eq!(bucket_blobs(&location, "large").await, Vec::<String>::new());

    // A composite left by a completion cut off before its commit, and a
    // folder Nimbus did not write.
    let prefix = S3Location::parse(&location).unwrap().prefix;
    for name in [
        format!("{:032x}-2/00001.3", 7),
        format!("{:032x}-2/00002.3", 7),
        "notes/00001.3".into(),
    ] {
        raw_client()
            .put(
                &BlobPath::from(format!("{prefix}/large/{name}")),
                Bytes::from_static(b"abc").into(),
            )
            .await
            .unwrap();
    }
    assert_eq!(buckets.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(bucket_blobs(&location, "large").await, ["00001.3"]);
}
