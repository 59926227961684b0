//! Object operations: put, get (with ranges), head, delete (one or many)
//! and copy, through `Buckets` so limits, key rules, metadata rules and
//! object events are the same as for `/v1`. Bytes stream both ways: a get
//! sends them as they are read, a copy writes them as they are read.

use crate::auth::signer;
use crate::body::{self, Expected};
use crate::error::{from_bucket, from_read_upload, from_upload, invalid_key};
use nimbus_access::Action;
use nimbus_bucket::{Buckets, ByteRange, Checksums, PutOptions, check_object_key};
use nimbus_store::ObjectMeta;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

/// Most keys one DeleteObjects request may name, as S3.
const MAX_DELETE_KEYS: usize = 1000;

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

pub(crate) fn user_metadata(given: Option<Metadata>) -> BTreeMap<String, String> {
    given
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user_metadata.is_empty()).then(|| {
        meta.user_metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    })
}

/// The uploader's W3C trace context, carried on to the object's events as
/// `/v1` carries it (an invalid one is ignored).
pub(crate) fn traceparent(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(nimbus_trace::TraceContext::parse)
        .map(|c| c.to_traceparent())
}

pub(crate) fn checked_key(key: &str) -> S3Result<()> {
    check_object_key(key).map_err(|why| invalid_key(&why))
}

/// The most bytes an object of `bucket` may have (`NoSuchBucket` if the
/// served version does not declare it).
pub(crate) fn limit(buckets: &Buckets, bucket: &str) -> S3Result<u64> {
    buckets
        .bucket(bucket)
        .map(|b| b.max_object_bytes)
        .map_err(from_bucket)
}

pub(crate) async fn put_object(
    buckets: &Buckets,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let input = req.input;
    let limit = limit(buckets, &input.bucket)?;
    checked_key(&input.key)?;
    let trace = traceparent(&req.headers);
    let expected = Expected {
        content_md5: input.content_md5,
        checksum: Checksum {
            checksum_crc32: input.checksum_crc32,
            checksum_crc32c: input.checksum_crc32c,
            checksum_sha1: input.checksum_sha1,
            checksum_sha256: input.checksum_sha256,
            checksum_crc64nvme: input.checksum_crc64nvme,
            ..Default::default()
        },
        algorithm: input.checksum_algorithm,
    }
    .with_trailer(&req.headers);
    let body = body::checked(
        input.body,
        input.content_length,
        limit,
        expected,
        req.trailing_headers,
    )?;
    let options = PutOptions {
        content_type: input.content_type,
        user_metadata: user_metadata(input.metadata),
        traceparent: trace,
        ..PutOptions::default()
    };
    // The checksums computed, echoed back as S3 does.
    let mut echoed = Checksum::default();
    let meta = buckets
        .put_stream(&input.bucket, &input.key, body, options, |body, written| {
            let c = body.finish(written.md5)?;
            let keep = kept(&c)?;
            echoed = c;
            Ok(keep)
        })
        .await
        .map_err(from_upload)?;
    let c = echoed;
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&meta)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        ..Default::default()
    }))
}

/// The checksums of an upload, checked on the way in, to keep with the
/// object.
fn kept(c: &Checksum) -> S3Result<Checksums> {
    let mut kept = Checksums::default();
    for (algorithm, value) in [
        ("crc32", &c.checksum_crc32),
        ("crc32c", &c.checksum_crc32c),
        ("sha1", &c.checksum_sha1),
        ("sha256", &c.checksum_sha256),
        ("crc64nvme", &c.checksum_crc64nvme),
    ] {
        if let Some(value) = value {
            kept.insert(algorithm, value).map_err(from_bucket)?;
        }
    }
    Ok(kept)
}

/// The kept checksums as S3 answers them, when the request asked with
/// `x-amz-checksum-mode: ENABLED` (of the whole object only: a range has
/// none).
fn shown(mode: Option<&ChecksumMode>, whole: bool, kept: &Checksums) -> Checksum {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if !enabled || !whole || kept.is_empty() {
        return Checksum::default();
    }
    let get = |algorithm: &str| kept.get(algorithm).map(str::to_owned);
    Checksum {
        checksum_crc32: get("crc32"),
        checksum_crc32c: get("crc32c"),
        checksum_sha1: get("sha1"),
        checksum_sha256: get("sha256"),
        checksum_crc64nvme: get("crc64nvme"),
        checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
    }
}

fn byte_range(range: Option<Range>) -> Option<ByteRange> {
    range.map(|r| match r {
        Range::Int { first, last } => ByteRange::From { first, last },
        Range::Suffix { length } => ByteRange::Suffix(length),
    })
}

/// The preconditions of a read, as S3 (and RFC 9110) weighs them.
#[derive(Default)]
struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

/// Whole seconds since the epoch: HTTP dates carry no finer time, so an
/// object is compared by the `Last-Modified` it is shown with.
fn seconds(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// `If-Match` against the object's ETag, else `If-Unmodified-Since`
/// against its time: failing is 412. `If-None-Match`, else
/// `If-Modified-Since`: an object that matches or is unchanged is 304.
fn conditions(meta: &ObjectMeta, given: Conditions<'_>) -> S3Result<()> {
    let ours = etag(meta);
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == ours.value(),
    };
    let modified = (meta.created_at / 1000) as i64;
    let failed = match (given.if_match, given.if_unmodified_since) {
        (Some(c), _) => !matches(c),
        (None, Some(since)) => modified > seconds(since),
        (None, None) => false,
    };
    if failed {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    let unchanged = match (given.if_none_match, given.if_modified_since) {
        (Some(c), _) => matches(c),
        (None, Some(since)) => modified <= seconds(since),
        (None, None) => false,
    };
    if unchanged {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

pub(crate) async fn get_object(
    buckets: &Buckets,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let got = buckets
        .get_stream(&input.bucket, &input.key, byte_range(input.range))
        .await
        .map_err(from_bucket)?;
    let meta = got.meta.clone();
    // Refused after opening the bytes, from the metadata they were opened
    // with; dropping the stream closes them.
    conditions(
        &meta,
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )?;
    let range = got.range.clone();
    let content_range = range.as_ref().map(|r| {
        format!(
            "bytes {}-{}/{}",
            r.start,
            r.end.saturating_sub(1),
            meta.size
        )
    });
    let c = shown(
        input.checksum_mode.as_ref(),
        range.is_none(),
        &got.checksums,
    );
    let content_length = got.content_length() as i64;
    Ok(S3Response::new(GetObjectOutput {
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        checksum_type: c.checksum_type,
        content_length: Some(content_length),
        body: Some(body::download(got)),
        content_range,
        accept_ranges: Some("bytes".to_owned()),
        content_type: Some(meta.content_type.clone()),
        e_tag: Some(etag(&meta)),
        last_modified: Some(timestamp(meta.created_at)),
        metadata: metadata(&meta),
        ..Default::default()
    }))
}

pub(crate) async fn head_object(
    buckets: &Buckets,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let (meta, checksums) = buckets
        .head_with_checksums(&input.bucket, &input.key)
        .await
        .map_err(from_bucket)?;
    conditions(
        &meta,
        Conditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )?;
    let c = shown(input.checksum_mode.as_ref(), true, &checksums);
    Ok(S3Response::new(HeadObjectOutput {
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        checksum_type: c.checksum_type,
        content_length: Some(meta.size as i64),
        accept_ranges: Some("bytes".to_owned()),
        content_type: Some(meta.content_type.clone()),
        e_tag: Some(etag(&meta)),
        last_modified: Some(timestamp(meta.created_at)),
        metadata: metadata(&meta),
        ..Default::default()
    }))
}

pub(crate) async fn delete_object(
    buckets: &Buckets,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    // Deleting a key that is not there succeeds, as in S3.
    buckets
        .delete(&input.bucket, &input.key, traceparent(&req.headers))
        .await
        .map_err(from_bucket)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(crate) async fn delete_objects(
    buckets: &Buckets,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let key_of_signer = signer(&req)?;
    let trace = traceparent(&req.headers);
    let input = req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    // The bucket must exist (a kept one may be emptied too).
    buckets
        .list(
            &input.bucket,
            nimbus_store::ListQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(from_bucket)?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in input.delete.objects {
        let key = object.key;
        let failed = |code: &str, message: String| Error {
            code: Some(code.to_owned()),
            key: Some(key.clone()),
            message: Some(message),
            version_id: None,
        };
        if !key_of_signer.allows(Action::BucketWrite {
            bucket: &input.bucket,
            key: &key,
        }) {
            errors.push(failed("AccessDenied", "Access Denied".to_owned()));
            continue;
        }
        if let Err(why) = check_object_key(&key) {
            errors.push(failed("InvalidArgument", format!("invalid key: {why}")));
            continue;
        }
        match buckets.delete(&input.bucket, &key, trace.clone()).await {
            Ok(_) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(key),
                        ..Default::default()
                    });
                }
            }
            Err(e) => {
                let e = from_bucket(e);
                errors.push(failed(
                    e.code().as_str(),
                    e.message().unwrap_or_default().to_owned(),
                ));
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

pub(crate) async fn copy_object(
    buckets: &Buckets,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let trace = traceparent(&req.headers);
    let input = req.input;
    let CopySource::Bucket {
        bucket: from_bucket_name,
        key: from_key,
        ..
    } = &input.copy_source
    else {
        return Err(s3_error!(NotImplemented, "Nimbus copies from buckets only"));
    };
    let limit = limit(buckets, &input.bucket)?;
    checked_key(&input.key)?;
    checked_key(from_key)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if !replace && **from_bucket_name == *input.bucket && **from_key == *input.key {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let source = buckets
        .get_stream(from_bucket_name, from_key, None)
        .await
        .map_err(from_bucket)?;
    // Every failed copy condition is 412, as S3 answers them.
    conditions(
        &source.meta,
        Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        },
    )
    .map_err(|_| {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    })?;
    if source.meta.size > limit {
        return Err(body::too_large(limit));
    }
    let options = if replace {
        PutOptions {
            content_type: input.content_type,
            user_metadata: user_metadata(input.metadata),
            traceparent: trace,
            ..PutOptions::default()
        }
    } else {
        PutOptions {
            content_type: Some(source.meta.content_type.clone()),
            user_metadata: source.meta.user_metadata.clone(),
            traceparent: trace,
            ..PutOptions::default()
        }
    };
    // The source's bytes piped into the copy as they are read: memory stays
    // bounded, and a source cut off fails the copy (its stream ends with an
    // error), which then stores nothing. Its checksums are not carried over,
    // as before the copy was streamed.
    let meta = buckets
        .put_stream(&input.bucket, &input.key, source.body, options, |_, _| {
            Ok(Checksums::default())
        })
        .await
        .map_err(from_read_upload)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.created_at)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Nimbus objects carry no tags: an existing object's tag set is empty
/// (clients copying an object ask for it).
pub(crate) async fn get_object_tagging(
    buckets: &Buckets,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    buckets
        .head(&input.bucket, &input.key)
        .await
        .map_err(from_bucket)?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: Vec::new(),
        version_id: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(created_at: u64) -> ObjectMeta {
        ObjectMeta {
            bucket: "b".into(),
            key: "k".into(),
            size: 0,
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            content_type: "text/plain".into(),
            user_metadata: BTreeMap::new(),
            blob: "x".into(),
            created_at,
            sequencer: 1,
        }
    }

    fn code(r: S3Result<()>) -> Option<String> {
        r.err().map(|e| e.code().as_str().to_owned())
    }

    #[test]
    fn dates_are_weighed_in_whole_seconds_and_after_the_etag_conditions() {
        // Modified at 1,000.5 s: shown as 1,000.
        let meta = object(1_000_500);
        let at = |s: u64| timestamp(s * 1000);
        let (before, same) = (at(999), at(1000));
        let since = |t| Conditions {
            if_modified_since: Some(t),
            ..Default::default()
        };
        assert_eq!(code(conditions(&meta, since(&before))), None);
        assert_eq!(
            code(conditions(&meta, since(&same))).as_deref(),
            Some("NotModified")
        );
        let unmodified = |t| Conditions {
            if_unmodified_since: Some(t),
            ..Default::default()
        };
        assert_eq!(code(conditions(&meta, unmodified(&same))), None);
        assert_eq!(
            code(conditions(&meta, unmodified(&before))).as_deref(),
            Some("PreconditionFailed")
        );
        // A matching If-Match outweighs a failed If-Unmodified-Since, and
        // a failed If-None-Match outweighs If-Modified-Since.
        let ours = ETagCondition::ETag(etag(&meta));
        let other = ETagCondition::ETag(ETag::Strong("0".repeat(32)));
        let both = Conditions {
            if_match: Some(&ours),
            if_unmodified_since: Some(&before),
            if_none_match: Some(&other),
            if_modified_since: Some(&same),
        };
        assert_eq!(code(conditions(&meta, both)), None);
    }
}
