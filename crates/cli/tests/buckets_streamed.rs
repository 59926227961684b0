//! Objects stream in and out of object storage (issue 14): through the real
//! server, a `/v1` PUT and GET, an S3 PutObject, GetObject, CopyObject,
//! UploadPartCopy and multipart upload (its parts and its completion) of an
//! object many times a memory bound each leave the server's peak resident
//! memory within that bound, and the object reads back as sent (every byte
//! of a whole read compared, its ETag the MD5 of the bytes, ranges across
//! it with their `Content-Range`). A body past the bucket's limit while it
//! streams, or whose Content-MD5 is wrong, is refused with the protocol's
//! error and leaves no object and no blob; a blob cut short under its
//! object aborts a read instead of ending it as if whole.

mod support;

use nimbus_test_programs as programs;
use std::path::{Path, PathBuf};
use support::{Nimbus, TestApp, cli, client};

/// The object sent, far past what a held upload would let the server stay
/// under [`MEMORY_BOUND`].
const OBJECT_BYTES: usize = 192 << 20;
/// How much the server's peak resident memory may grow over an upload or
/// a read: the write and read buffers (1 MiB locally), hyper's and s3s's,
/// the allocator's slack, and what the server allocates meanwhile.
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

/// A line of the server's `/proc/PID/status`, in bytes.
fn status_bytes(nimbus: &Nimbus, field: &str) -> u64 {
    let pid = nimbus.child.id().expect("nimbus is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("{field} in /proc/PID/status"));
    kib * 1024
}

/// How much the server's peak resident memory (Linux `VmHWM`) grows while
/// `work` runs, with what it gave. The peak is first brought down to the
/// memory resident now (`clear_refs`), so what earlier work used cannot
/// hide what this uses.
async fn peak_growth<T>(nimbus: &Nimbus, work: impl Future<Output = T>) -> (T, u64) {
    let pid = nimbus.child.id().expect("nimbus is running");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_bytes(nimbus, "VmHWM:");
    let out = work.await;
    let grown = status_bytes(nimbus, "VmHWM:").saturating_sub(before);
    (out, grown)
}

/// Fails unless `grown`, what `what` grew the server's peak memory by, is
/// within [`MEMORY_BOUND`]; prints it for the record.
fn assert_bounded(what: &str, grown: u64) {
    eprintln!("{what} of {OBJECT_BYTES} bytes grew the peak by {grown} bytes");
    assert!(
        grown < MEMORY_BOUND,
        "{what} of {OBJECT_BYTES} bytes grew the server's peak memory by {grown} bytes"
    );
}

/// Reads `response`'s body as it arrives and compares every byte with
/// `want`, holding no more than a chunk; the body must end exactly there.
async fn assert_body_is(mut response: reqwest::Response, want: &[u8]) {
    let mut at = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        let end = at + chunk.len();
        assert!(end <= want.len(), "the body runs past {} bytes", want.len());
        assert!(
            chunk[..] == want[at..end],
            "the body differs within {at}..{end}"
        );
        at = end;
    }
    assert_eq!(at, want.len(), "the body ended early");
}

/// The files under a bucket's folder in the data directory.
fn blob_files(app: &TestApp, bucket: &str) -> Vec<PathBuf> {
    let dir = app.data_dir().join("buckets").join(bucket);
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Cuts a blob to half an object's size behind the server's back, as
/// damaged storage would; a completed multipart upload's blob, a folder of
/// its parts, has each part cut to half its size.
fn cut_short(blob: &Path) {
    let cut = |file: &Path, len: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .unwrap()
            .set_len(len)
            .unwrap();
    };
    if blob.is_dir() {
        for part in std::fs::read_dir(blob).unwrap().flatten() {
            cut(&part.path(), part.metadata().unwrap().len() / 2);
        }
    } else {
        cut(blob, OBJECT_BYTES as u64 / 2);
    }
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
    let (put, grown) = peak_growth(
        &nimbus,
        client()
            .put(url("big", "whole"))
            .body(chunked(bytes.clone()))
            .send(),
    )
    .await;
    let put = put.unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    assert_bounded("a /v1 PUT", grown);
    let etag = format!("\"{}\"", nimbus_bucket::etag(&bytes));
    assert_eq!(put.headers()["etag"].to_str().unwrap(), etag);
    let head = client().head(url("big", "whole")).send().await.unwrap();
    assert_eq!(
        head.headers()["content-length"],
        OBJECT_BYTES.to_string().as_str()
    );

    // Read as it is sent: the whole object, its bytes compared as they come.
    let ((), grown) = peak_growth(&nimbus, async {
        let got = client().get(url("big", "whole")).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(
            got.headers()["content-length"],
            OBJECT_BYTES.to_string().as_str()
        );
        assert_body_is(got, &bytes).await;
    })
    .await;
    assert_bounded("a /v1 GET", grown);

    // Ranges: small ones, one of most of the object starting mid-slice, and
    // a suffix, each with its Content-Range.
    let ranges = [
        ("bytes=0-4095".to_owned(), 0..4096),
        (
            format!("bytes={}-{}", OBJECT_BYTES / 2 - 3, OBJECT_BYTES / 2 + 5),
            OBJECT_BYTES / 2 - 3..OBJECT_BYTES / 2 + 6,
        ),
        (
            format!("bytes={}-", OBJECT_BYTES - 100),
            OBJECT_BYTES - 100..OBJECT_BYTES,
        ),
        (
            format!("bytes=12345-{}", OBJECT_BYTES - 54321),
            12345..OBJECT_BYTES - 54320,
        ),
        (
            "bytes=-3000000".to_owned(),
            OBJECT_BYTES - 3_000_000..OBJECT_BYTES,
        ),
    ];
    for (asked, want) in ranges {
        let got = client()
            .get(url("big", "whole"))
            .header("range", &asked)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 206, "{asked}");
        assert_eq!(
            got.headers()["content-range"],
            format!("bytes {}-{}/{OBJECT_BYTES}", want.start, want.end - 1).as_str(),
            "{asked}"
        );
        assert_eq!(
            got.headers()["content-length"],
            want.len().to_string().as_str(),
            "{asked}"
        );
        assert_body_is(got, &bytes[want]).await;
    }
    assert_eq!(blob_files(&app, "big").len(), 1);

    // A blob cut short under its object (damaged storage): the headers
    // promise the object's length, and the body is cut off short of it, an
    // error to the client rather than a body that looks whole.
    cut_short(&blob_files(&app, "big")[0]);
    let cut = client().get(url("big", "whole")).send().await.unwrap();
    assert_eq!(cut.status(), 200);
    assert!(cut.bytes().await.is_err(), "a cut-off body read as whole");
    let deleted = client().delete(url("big", "whole")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

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
        let mut command = support::aws::aws_command(
            "python3",
            key["id"].as_str().unwrap(),
            key["secret"].as_str().unwrap(),
        );
        command
            .arg("s3_streamed.py")
            .args(args)
            .env("S3_ENDPOINT", &endpoint);
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
    let path = file.to_str().unwrap();
    let ((), grown) = peak_growth(&nimbus, script(vec!["put".into(), path.into()])).await;
    assert_bounded("an S3 PutObject and multipart upload", grown);
    // One blob per object; the completed upload's parts are gone.
    assert_eq!(blob_files(&app, "big").len(), 2);
    let ((), grown) = peak_growth(&nimbus, script(vec!["get".into(), path.into()])).await;
    assert_bounded("an S3 GetObject", grown);
    let ((), grown) = peak_growth(&nimbus, script(vec!["copy".into(), path.into()])).await;
    assert_bounded("an S3 CopyObject and UploadPartCopy", grown);
    // The copy, and the object put together from copied parts.
    assert_eq!(blob_files(&app, "big").len(), 4);
    let staging = app.data_dir().join("buckets").join("_uploads");
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(left, Vec::<PathBuf>::new());

    script(vec!["refused".into()]).await;
    assert_eq!(blob_files(&app, "big").len(), 4);
    assert_eq!(blob_files(&app, "tiny"), Vec::<PathBuf>::new());

    // Every blob cut short (which is `whole`'s the test cannot tell): the
    // GetObject answer is cut off, not ended as if whole.
    for blob in blob_files(&app, "big") {
        cut_short(&blob);
    }
    script(vec!["cut".into()]).await;
}
