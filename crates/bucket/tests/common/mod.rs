//! What the bucket test suites share: an upload begun with its parts sent.

use bytes::Bytes;
use nimbus_bucket::{Buckets, PutOptions, Upload};

/// Begins an upload of `key` into `bucket` and sends `parts` as parts 1,
/// 2, ...; returns it with each part's number and ETag, as a completion
/// names them.
pub async fn upload_with_parts(
    buckets: &Buckets,
    bucket: &str,
    key: &str,
    parts: &[Vec<u8>],
) -> (Upload, Vec<(u32, String)>) {
    let upload = buckets
        .create_upload(bucket, key, PutOptions::default())
        .await
        .unwrap();
    let mut chosen = Vec::new();
    for (i, bytes) in parts.iter().enumerate() {
        let part = buckets
            .put_part(
                bucket,
                key,
                &upload.id,
                i as u32 + 1,
                Bytes::from(bytes.clone()),
            )
            .await
            .unwrap();
        chosen.push((part.number, part.etag));
    }
    (upload, chosen)
}
