//! Listings: the buckets a key may see, HeadBucket, and the objects of a
//! bucket (ListObjectsV2 with continuation tokens, and the older
//! ListObjects with markers), with `encoding-type=url`.

use crate::auth::signer;
use crate::error::from_bucket;
use crate::objects::{etag, timestamp};
use base64::Engine as _;
use nimbus_access::Action;
use nimbus_bucket::{Buckets, MAX_LIST_LIMIT};
use nimbus_store::{ListPage, ListQuery};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

const TOKEN: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) fn owner() -> Owner {
    Owner {
        display_name: Some("nimbus".to_owned()),
        id: Some("nimbus".to_owned()),
    }
}

pub(crate) fn list_buckets(
    buckets: &Buckets,
    req: &S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let key = signer(req)?;
    let listed = buckets
        .list_buckets()
        .filter(|b| key.allows(Action::BucketSee(&b.name)))
        .map(|b| Bucket {
            name: Some(b.name.clone()),
            // Buckets are declared, not created; clients want a date.
            creation_date: Some(timestamp(0)),
            bucket_region: None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(listed),
        owner: Some(owner()),
        ..Default::default()
    }))
}

/// Whether `bucket` can be listed: declared, or kept from an earlier
/// version with objects in it.
pub(crate) async fn exists(buckets: &Buckets, bucket: &str) -> S3Result<()> {
    let probe = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    buckets
        .list(bucket, probe)
        .await
        .map(drop)
        .map_err(from_bucket)
}

/// The page size asked for: 1,000 when not given, never more.
pub(crate) fn page_size(max_keys: Option<i32>) -> S3Result<u32> {
    match max_keys {
        None => Ok(MAX_LIST_LIMIT),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(n) => Ok((n as u32).min(MAX_LIST_LIMIT)),
    }
}

/// Whether names in the answer are URL-encoded.
pub(crate) fn url_encoded(encoding: Option<&EncodingType>) -> S3Result<bool> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(false),
        Some(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

/// A name as the answer carries it: URL-encoded (keeping `/`, as S3) when
/// asked for, since XML cannot carry every character a key may hold.
pub(crate) fn name(text: &str, encode: bool) -> String {
    if encode {
        urlencoding::encode(text).replace("%2F", "/")
    } else {
        text.to_owned()
    }
}

async fn page(
    buckets: &Buckets,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<String>,
    limit: u32,
) -> S3Result<ListPage> {
    if limit == 0 {
        // Nothing asked for: the bucket must still be there.
        exists(buckets, bucket).await?;
        return Ok(ListPage::default());
    }
    let query = ListQuery {
        prefix: prefix.to_owned(),
        delimiter: delimiter.map(str::to_owned),
        start_after,
        limit,
    };
    buckets.list(bucket, query).await.map_err(from_bucket)
}

fn contents(page: &ListPage, encode: bool) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = page
        .objects
        .iter()
        .map(|o| Object {
            key: Some(name(&o.key, encode)),
            e_tag: Some(etag(o)),
            size: Some(o.size as i64),
            last_modified: Some(timestamp(o.created_at)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(name(p, encode)),
        })
        .collect();
    (objects, prefixes)
}

pub(crate) async fn list_objects_v2(
    buckets: &Buckets,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let limit = page_size(input.max_keys)?;
    let encode = url_encoded(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let after = match &input.continuation_token {
        Some(token) => Some(
            TOKEN
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?,
        ),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let page = page(
        buckets,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        after,
        limit,
    )
    .await?;
    let (objects, prefixes) = contents(&page, encode);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        key_count: Some((objects.len() + prefixes.len()) as i32),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        is_truncated: Some(page.next_start_after.is_some()),
        next_continuation_token: page.next_start_after.as_deref().map(|k| TOKEN.encode(k)),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(|s| name(&s, encode)),
        prefix: Some(name(&prefix, encode)),
        delimiter: input.delimiter.map(|d| name(&d, encode)),
        max_keys: Some(limit as i32),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    buckets: &Buckets,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let limit = page_size(input.max_keys)?;
    let encode = url_encoded(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = page(
        buckets,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        input.marker.clone().filter(|m| !m.is_empty()),
        limit,
    )
    .await?;
    let (objects, prefixes) = contents(&page, encode);
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        is_truncated: Some(page.next_start_after.is_some()),
        next_marker: page.next_start_after.as_deref().map(|k| name(k, encode)),
        marker: Some(name(input.marker.as_deref().unwrap_or_default(), encode)),
        prefix: Some(name(&prefix, encode)),
        delimiter: input.delimiter.map(|d| name(&d, encode)),
        max_keys: Some(limit as i32),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_names_keep_their_slashes() {
        assert_eq!(name("docs/c d+é.txt", true), "docs/c%20d%2B%C3%A9.txt");
        assert_eq!(name("docs/c d.txt", false), "docs/c d.txt");
        assert!(url_encoded(Some(&EncodingType::from_static(EncodingType::URL))).unwrap());
        assert!(url_encoded(Some(&EncodingType::from_static("base64"))).is_err());
    }

    #[test]
    fn pages_hold_at_most_a_thousand_entries() {
        assert_eq!(page_size(None).unwrap(), 1000);
        assert_eq!(page_size(Some(5000)).unwrap(), 1000);
        assert_eq!(page_size(Some(0)).unwrap(), 0);
        assert!(page_size(Some(-1)).is_err());
    }
}
