//! Uploads stream to object storage (issue 14): through the real server, a
//! `/v1` PUT, an S3 PutObject and an S3 multipart upload (its parts and its
//! completion) of an object many times a memory bound leave the server's
//! peak resident memory within that bound, and the object reads back as
//! sent (its ETag the MD5 of the bytes, ranges across it). A body past the
//! bucket's limit while it streams, or whose Content-MD5 is wrong, is
//! refused with the protocol's error and leaves no object and no blob.

mod support;

use nimbus_test_programs as programs;
use std::path::{Path, PathBuf};
use support::{Nimbus, TestApp, cli, client};

/// The object sent, far past what a held upload would let the server stay
/// under [`MEMORY_BOUND`].
const OBJECT_BYTES: usize = 192 << 20;
/// How much the server's peak resident memory may grow over an upload:
/// the write buffers (1 MiB locally), hyper's and s3s's, the allocator's
/// slack, and what the server allocates meanwhile.
const MEMORY_BOUND: u64 = 64 << 20;

/// `big` holds 256 MiB objects (the most a bucket may), `tiny` 1 MiB.
fn app(name: &str) -> TestApp {
    TestApp::new(name).function(
        "worker",
        programs::EVENTS,
        "\n[bucket.big]\nmax_object_bytes = 268435456\n\n[bucket.tiny]\nmax_object_bytes = 1048576",
    )
}

/// Bytes that differ along the object, so a part out of place shows.
fn object_bytes() -> Vec<u8> {
    (0..OBJECT_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The server's peak resident memory so far, in bytes (Linux `VmHWM`).
fn peak_resident_bytes(nimbus: &Nimbus) -> u64 {
    let pid = nimbus.child.id().expect("nimbus is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

/// The files under a bucket's folder in the data directory.
fn blob_files(app: &TestApp, bucket: &str) -> Vec<PathBuf> {
    let dir = app.data_dir().join("buckets").join(bucket);
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A body sent chunked (no `Content-Length`), 1 MiB at a time.
fn chunked(bytes: std::sync::Arc<Vec<u8>>) -> reqwest::Body {
    let chunks = (0..bytes.len().div_ceil(1 << 20)).map(move |i| {
        let end = ((i + 1) << 20).min(bytes.len());
        Ok::<_, std::io::Error>(bytes[i << 20..end].to_vec())
    });
    reqwest::Body::wrap_stream(tokio_stream::iter(chunks))
}

#[tokio::test]
async fn a_v1_put_far_past_the_memory_bound_streams_and_an_over_limit_one_stores_nothing() {
    let app = app("streamv1");
    let nimbus = app.start().await;
    let url =
        |bucket: &str, key: &str| nimbus.admin_url(&format!("/v1/buckets/{bucket}/objects/{key}"));
    let bytes = std::sync::Arc::new(object_bytes());
    let before = peak_resident_bytes(&nimbus);
    let put = client()
        .put(url("big", "whole"))
        .body(chunked(bytes.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let grown = peak_resident_bytes(&nimbus).saturating_sub(before);
    eprintln!("a /v1 PUT of {OBJECT_BYTES} bytes grew the peak by {grown} bytes");
    assert!(
        grown < MEMORY_BOUND,
        "a {OBJECT_BYTES}-byte upload grew the server's peak memory by {grown} bytes"
    );
    let etag = format!("\"{}\"", nimbus_bucket::etag(&bytes));
    assert_eq!(put.headers()["etag"].to_str().unwrap(), etag);
    let head = client().head(url("big", "whole")).send().await.unwrap();
    assert_eq!(
        head.headers()["content-length"],
        OBJECT_BYTES.to_string().as_str()
    );
    for (first, last) in [
        (0, 4095),
        (OBJECT_BYTES / 2 - 3, OBJECT_BYTES / 2 + 5),
        (OBJECT_BYTES - 100, OBJECT_BYTES - 1),
    ] {
        let got = client()
            .get(url("big", "whole"))
            .header("range", format!("bytes={first}-{last}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 206);
        assert_eq!(&got.bytes().await.unwrap()[..], &bytes[first..=last]);
    }
    assert_eq!(blob_files(&app, "big").len(), 1);

    // Chunked, so only the bytes themselves tell it is over the limit.
    let over = std::sync::Arc::new(vec![7u8; 3 << 20]);
    let refused = client()
        .put(url("tiny", "over"))
        .body(chunked(over))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
    let head = client().head(url("tiny", "over")).send().await.unwrap();
    assert_eq!(head.status(), 404);
    // The blob went before the answer did.
    assert_eq!(blob_files(&app, "tiny"), Vec::<PathBuf>::new());
    // The server goes on, and a body within the limit is stored.
    let fits = client()
        .put(url("tiny", "fits"))
        .body(vec![1u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
}

#[tokio::test]
async fn s3_uploads_far_past_the_memory_bound_stream_and_a_wrong_digest_stores_nothing() {
    let app = app("streams3");
    let manifest = app.write();
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &["--s3-listen", "127.0.0.1:0"]).await;
    let line = nimbus
        .stdout
        .wait_for("the S3 listener", |l| l.starts_with("s3 listening on "))
        .await;
    let endpoint = line.rsplit(' ').next().unwrap().to_owned();
    let created = cli(
        &nimbus,
        &[
            "access-key",
            "create",
            "streamer",
            "--allow",
            "bucket:big:read",
            "--allow",
            "bucket:big:write",
            "--allow",
            "bucket:tiny:read",
            "--allow",
            "bucket:tiny:write",
        ],
    )
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("object.bin");
    std::fs::write(&file, object_bytes()).unwrap();

    let script = |args: Vec<String>| {
        let mut command = std::process::Command::new("python3");
        command
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws"))
            .arg("s3_streamed.py")
            .args(args)
            .env("S3_ENDPOINT", &endpoint)
            .env("AWS_ACCESS_KEY_ID", key["id"].as_str().unwrap())
            .env("AWS_SECRET_ACCESS_KEY", key["secret"].as_str().unwrap())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_CA_BUNDLE");
        async move {
            let shown = format!("{command:?}");
            let output = tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap()
                .unwrap_or_else(|e| {
                    panic!("python3 could not start ({e}); install boto3: python3 -m pip install boto3 (see .ci/run for the pinned version)")
                });
            assert!(
                output.status.success(),
                "{shown} failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    };
    let before = peak_resident_bytes(&nimbus);
    script(vec!["put".into(), file.to_str().unwrap().into()]).await;
    let grown = peak_resident_bytes(&nimbus).saturating_sub(before);
    eprintln!("S3 uploads of {OBJECT_BYTES} bytes grew the peak by {grown} bytes");
    assert!(
        grown < MEMORY_BOUND,
        "a {OBJECT_BYTES}-byte PutObject and multipart upload grew the server's peak memory by {grown} bytes"
    );
    // One blob per object; the completed upload's parts are gone.
    assert_eq!(blob_files(&app, "big").len(), 2);
    let staging = app.data_dir().join("buckets").join("_uploads");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<PathBuf>::new());

    script(vec!["refused".into()]).await;
    assert_eq!(blob_files(&app, "big").len(), 2);
    assert_eq!(blob_files(&app, "tiny"), Vec::<PathBuf>::new());
}
