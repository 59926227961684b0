//! Multipart uploads (create, upload part, complete, abort, list parts,
//! list uploads) over `Buckets`' staging area; completing one stores the object through
//! `Buckets::put_stream`, so object triggers fire as for any other upload.
//! Part bodies stream into the staging area, checked as they pass.

use crate::body::{self, Expected};
use crate::error::{from_bucket, from_read_upload, from_upload};
use crate::list::{name, owner, page_size, url_encoded};
use crate::objects::{checked_key, limit, timestamp, traceparent, user_metadata};
use nimbus_bucket::{Buckets, ByteRange, MAX_PART_NUMBER, MultipartError, PutOptions, part_number};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// Most parts one ListParts page holds, as S3.
const MAX_PARTS_PAGE: u32 = 1000;

fn from_multipart(e: MultipartError) -> S3Error {
    match e {
        MultipartError::Bucket(e) => from_bucket(e),
        MultipartError::NoSuchUpload(_) => s3_error!(
            NoSuchUpload,
            "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
        ),
        e @ MultipartError::InvalidPart(_) => {
            S3Error::with_message(S3ErrorCode::InvalidPart, e.to_string())
        }
        e @ MultipartError::InvalidPartOrder => {
            S3Error::with_message(S3ErrorCode::InvalidPartOrder, e.to_string())
        }
        e @ MultipartError::EntityTooSmall { .. } => {
            S3Error::with_message(S3ErrorCode::EntityTooSmall, e.to_string())
        }
        e @ MultipartError::InvalidPartNumber => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
        }
    }
}

pub(crate) async fn create(
    buckets: &Buckets,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let options = PutOptions {
        content_type: input.content_type,
        user_metadata: user_metadata(input.metadata),
        ..PutOptions::default()
    };
    let upload = buckets
        .create_upload(&input.bucket, &input.key, options)
        .await
        .map_err(from_multipart)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        // Each part's checksum is checked as it arrives.
        checksum_algorithm: input.checksum_algorithm,
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    buckets: &Buckets,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let number = part_number(input.part_number).map_err(from_multipart)?;
    let limit = limit(buckets, &input.bucket)?;
    // Refused before its bytes are read when the upload is not there.
    buckets
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(from_multipart)?;
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
    let mut echoed = Checksum::default();
    let part = buckets
        .put_part_stream(
            &input.bucket,
            &input.upload_id,
            number,
            body,
            |body, written| {
                echoed = body.finish(written.md5)?;
                Ok(())
            },
        )
        .await
        .map_err(from_upload)?;
    let c = echoed;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        checksum_crc64nvme: c.checksum_crc64nvme,
        ..Default::default()
    }))
}

/// `bytes=FIRST-LAST` of `x-amz-copy-source-range`.
fn copy_range(given: &str) -> S3Result<ByteRange> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let (first, last) = given
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if last < first {
        return Err(invalid());
    }
    Ok(ByteRange::From {
        first,
        last: Some(last),
    })
}

/// A part copied from an object (all of it, or a range): how clients copy
/// large objects within the store.
pub(crate) async fn upload_part_copy(
    buckets: &Buckets,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let number = part_number(input.part_number).map_err(from_multipart)?;
    let CopySource::Bucket {
        bucket: source_bucket,
        key: source_key,
        ..
    } = &input.copy_source
    else {
        return Err(s3_error!(NotImplemented, "Nimbus copies from buckets only"));
    };
    checked_key(source_key)?;
    buckets
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(from_multipart)?;
    let range = input
        .copy_source_range
        .as_deref()
        .map(copy_range)
        .transpose()?;
    let source = buckets
        .get_stream(source_bucket, source_key, range)
        .await
        .map_err(from_bucket)?;
    if let Some(ETagCondition::ETag(want)) = &input.copy_source_if_match
        && want.value() != source.meta.etag
    {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ));
    }
    // The source's bytes piped into the part as they are read (memory stays
    // bounded); a source cut off fails the part, which then does not exist.
    let part = buckets
        .put_part_stream(
            &input.bucket,
            &input.upload_id,
            number,
            source.body,
            |_, _| Ok(()),
        )
        .await
        .map_err(from_read_upload)?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(crate) async fn complete(
    buckets: &Buckets,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let trace = traceparent(&req.headers);
    let input = req.input;
    checked_key(&input.key)?;
    let parts = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if parts.is_empty() || parts.len() > MAX_PART_NUMBER as usize {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let mut chosen = Vec::with_capacity(parts.len());
    for part in parts {
        let (Some(number), Some(etag)) = (part.part_number, part.e_tag) else {
            return Err(s3_error!(
                MalformedXML,
                "every part needs its PartNumber and ETag"
            ));
        };
        let number = part_number(number).map_err(from_multipart)?;
        chosen.push((number, etag.value().to_owned()));
    }
    let object = buckets
        .complete_upload(&input.bucket, &input.key, &input.upload_id, &chosen, trace)
        .await
        .map_err(from_multipart)?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        e_tag: Some(ETag::Strong(object.etag)),
        ..Default::default()
    }))
}

pub(crate) async fn abort(
    buckets: &Buckets,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    buckets
        .abort_upload(&input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(from_multipart)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(
    buckets: &Buckets,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    checked_key(&input.key)?;
    let max = match input.max_parts {
        None => MAX_PARTS_PAGE,
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-parts must be non-negative"));
        }
        Some(n) => (n as u32).min(MAX_PARTS_PAGE),
    };
    let marker = input
        .part_number_marker
        .map(|m| m.max(0) as u32)
        .unwrap_or(0);
    let all = buckets
        .list_parts(&input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(from_multipart)?;
    let after: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max as usize;
    let page: Vec<Part> = after
        .into_iter()
        .take(max as usize)
        .map(|p| Part {
            part_number: Some(p.number as i32),
            e_tag: Some(ETag::Strong(p.etag)),
            size: Some(p.size as i64),
            last_modified: Some(timestamp(p.modified_ms)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page.last().and_then(|p| p.part_number),
        is_truncated: Some(truncated),
        parts: Some(page),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

/// One entry of a ListMultipartUploads page: an upload, or the common
/// prefix standing for every upload whose key has the delimiter after the
/// prefix.
enum Listed<'a> {
    Upload(&'a nimbus_bucket::Upload),
    Prefix(String),
}

impl Listed<'_> {
    fn key(&self) -> &str {
        match self {
            Listed::Upload(u) => &u.key,
            Listed::Prefix(p) => p,
        }
    }
}

/// The entries of `uploads` (sorted by key and id) after the markers,
/// uploads sharing a common prefix folded into one.
fn entries<'a>(
    uploads: &'a [nimbus_bucket::Upload],
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    upload_id_marker: Option<&str>,
) -> Vec<Listed<'a>> {
    let mut out: Vec<Listed<'a>> = Vec::new();
    for upload in uploads {
        let folded = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            let rest = &upload.key[prefix.len()..];
            rest.find(d)
                .map(|at| format!("{prefix}{}", &rest[..at + d.len()]))
        });
        let entry = match folded {
            Some(common) => Listed::Prefix(common),
            None => Listed::Upload(upload),
        };
        // An upload id marker counts only with a key marker, as in S3.
        let past = match (key_marker, &entry) {
            (None, _) => true,
            (Some(km), Listed::Upload(u)) => match upload_id_marker {
                Some(im) => (u.key.as_str(), u.id.as_str()) > (km, im),
                None => u.key.as_str() > km,
            },
            (Some(km), Listed::Prefix(p)) => p.as_str() > km,
        };
        if !past {
            continue;
        }
        if let (Listed::Prefix(p), Some(Listed::Prefix(last))) = (&entry, out.last())
            && p == last
        {
            continue;
        }
        out.push(entry);
    }
    out
}

/// ListMultipartUploads: the uploads in progress into a bucket, by key and
/// then by age, with prefix, delimiter, key and upload id markers and
/// max-uploads.
pub(crate) async fn list_uploads(
    buckets: &Buckets,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let max = page_size(input.max_uploads)? as usize;
    let encode = url_encoded(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.as_deref().filter(|m| !m.is_empty());
    let upload_id_marker = input.upload_id_marker.as_deref().filter(|m| !m.is_empty());
    let all = buckets
        .list_uploads(&input.bucket, &prefix)
        .await
        .map_err(from_multipart)?;
    let listed = entries(
        &all,
        &prefix,
        input.delimiter.as_deref(),
        key_marker,
        upload_id_marker,
    );
    let truncated = max > 0 && listed.len() > max;
    let page = &listed[..listed.len().min(max)];
    let (next_key, next_id) = match page.last().filter(|_| truncated) {
        Some(last) => (
            Some(name(last.key(), encode)),
            match last {
                Listed::Upload(u) => Some(u.id.clone()),
                Listed::Prefix(_) => None,
            },
        ),
        None => (None, None),
    };
    let mut uploads = Vec::new();
    let mut prefixes = Vec::new();
    for entry in page {
        match entry {
            Listed::Upload(u) => uploads.push(MultipartUpload {
                key: Some(name(&u.key, encode)),
                upload_id: Some(u.id.clone()),
                initiated: Some(timestamp(u.initiated_ms)),
                initiator: Some(Initiator {
                    display_name: Some("nimbus".to_owned()),
                    id: Some("nimbus".to_owned()),
                }),
                owner: Some(owner()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            }),
            Listed::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(name(p, encode)),
            }),
        }
    }
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(name(&prefix, encode)),
        delimiter: input.delimiter.map(|d| name(&d, encode)),
        key_marker: Some(name(key_marker.unwrap_or_default(), encode)),
        upload_id_marker: Some(upload_id_marker.unwrap_or_default().to_owned()),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(key: &str, id: &str) -> nimbus_bucket::Upload {
        nimbus_bucket::Upload {
            id: id.to_owned(),
            bucket: "b".to_owned(),
            key: key.to_owned(),
            content_type: None,
            user_metadata: Default::default(),
            initiated_ms: 0,
        }
    }

    fn keys(listed: &[Listed<'_>]) -> Vec<String> {
        listed
            .iter()
            .map(|e| match e {
                Listed::Upload(u) => format!("{}@{}", u.key, u.id),
                Listed::Prefix(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn markers_skip_what_was_listed_and_a_delimiter_folds_keys_into_prefixes() {
        let all = [
            upload("a", "1"),
            upload("a", "2"),
            upload("d/x", "3"),
            upload("d/y", "4"),
            upload("e", "5"),
        ];
        assert_eq!(
            keys(&entries(&all, "", Some("/"), None, None)),
            ["a@1", "a@2", "d/", "e@5"]
        );
        assert_eq!(
            keys(&entries(&all, "", Some("/"), Some("a"), Some("1"))),
            ["a@2", "d/", "e@5"]
        );
        // A common prefix given back as the key marker is past.
        assert_eq!(
            keys(&entries(&all, "", Some("/"), Some("d/"), None)),
            ["e@5"]
        );
        assert_eq!(
            keys(&entries(&all[2..4], "d/", None, None, None)),
            ["d/x@3", "d/y@4"]
        );
    }
}
