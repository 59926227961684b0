//! Times `Buckets::complete_upload` of a 100 MiB multipart upload (twelve
//! 8 MiB parts and one of 4 MiB) with local blobs (under the target
//! directory, on the project's disk: a tmpfs would make fsync free) and on
//! a private SeaweedFS, with the bytes this process had written to disk
//! during the completion (`write_bytes` of `/proc/self/io`).
//!
//!   cargo run -p nimbus-bucket --example complete_multipart

use bytes::Bytes;
use nimbus_bucket::{BlobStorage, Buckets, PutOptions, S3Config, S3Location};
use nimbus_manifest::App;
use nimbus_store::SystemClock;
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const MANIFEST: &str = r#"
[app]
name = "bench"

[bucket.bench]
max_object_bytes = 134217728
"#;
const PART_BYTES: usize = 8 << 20;
const OBJECT_BYTES: usize = 100 << 20;
const ROUNDS: usize = 3;

fn written_to_disk() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn round(buckets: &Buckets, label: &str) {
    let upload = buckets
        .create_upload("bench", "big", PutOptions::default())
        .await
        .unwrap();
    let mut chosen = Vec::new();
    for (i, start) in (0..OBJECT_BYTES).step_by(PART_BYTES).enumerate() {
        let len = PART_BYTES.min(OBJECT_BYTES - start);
        let bytes: Vec<u8> = (start..start + len).map(|b| (b % 251) as u8).collect();
        let number = i as u32 + 1;
        let part = buckets
            .put_part("bench", "big", &upload.id, number, Bytes::from(bytes))
            .await
            .unwrap();
        chosen.push((number, part.etag));
    }
    let disk = written_to_disk();
    let began = Instant::now();
    let object = buckets
        .complete_upload("bench", "big", &upload.id, &chosen, None)
        .await
        .unwrap();
    let took = began.elapsed();
    let disk = written_to_disk() - disk;
    assert_eq!(object.size, OBJECT_BYTES as u64);
    println!(
        "{label}: CompleteMultipartUpload of {} parts, 100 MiB: {:.1} ms, {:.1} MiB written to disk",
        chosen.len(),
        took.as_secs_f64() * 1000.0,
        disk as f64 / (1 << 20) as f64
    );
}

#[tokio::main]
async fn main() {
    let app = App::parse(Path::new("nimbus.toml"), MANIFEST).unwrap();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = tempfile::tempdir_in(target).unwrap();
    let options = SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let local = Buckets::open(&app, &dir.path().join("buckets"), store.clone()).unwrap();
    for _ in 0..ROUNDS {
        round(&local, "local").await;
    }
    let server = nimbus_test_s3::server();
    let config = S3Config::with_static_credentials(
        S3Location::parse(&server.fresh_location()).unwrap(),
        Some(server.endpoint()),
        Some(nimbus_test_s3::REGION),
        nimbus_test_s3::ACCESS_KEY_ID,
        nimbus_test_s3::SECRET_ACCESS_KEY,
    );
    let s3 = Buckets::open_in(&app, &BlobStorage::S3(Box::new(config)), store)
        .await
        .unwrap();
    for _ in 0..ROUNDS {
        round(&s3, "s3").await;
    }
}
