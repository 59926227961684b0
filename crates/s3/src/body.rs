//! Upload bodies: read up to the bucket's object limit (refused as soon as
//! they pass it), their MD5 (the ETag) taken on the way, and the checksums
//! the client sent checked: `Content-MD5`, and `x-amz-checksum-*` as a
//! header or as a trailer of an `aws-chunked` body (s3s has decoded the
//! chunks and verified their signatures by then).

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};

/// The checksums a client asked to be checked, by algorithm.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expected {
    pub content_md5: Option<String>,
    pub checksum: Checksum,
    /// `x-amz-sdk-checksum-algorithm` / `x-amz-checksum-algorithm`: the
    /// algorithm whose value may come only in a trailer.
    pub algorithm: Option<ChecksumAlgorithm>,
}

impl Expected {
    /// The algorithm named by `x-amz-trailer` when the request's own
    /// headers name none: its value comes after the body, so it must be
    /// computed all the same.
    pub(crate) fn with_trailer(mut self, headers: &http::HeaderMap) -> Self {
        if self.algorithm.is_none()
            && let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok())
        {
            let algorithm = match trailer.trim().to_ascii_lowercase().as_str() {
                "x-amz-checksum-crc32" => Some(ChecksumAlgorithm::CRC32),
                "x-amz-checksum-crc32c" => Some(ChecksumAlgorithm::CRC32C),
                "x-amz-checksum-sha1" => Some(ChecksumAlgorithm::SHA1),
                "x-amz-checksum-sha256" => Some(ChecksumAlgorithm::SHA256),
                "x-amz-checksum-crc64nvme" => Some(ChecksumAlgorithm::CRC64NVME),
                _ => None,
            };
            self.algorithm = algorithm.map(ChecksumAlgorithm::from_static);
        }
        self
    }
}

/// A body read in full.
pub(crate) struct Read {
    pub bytes: Bytes,
    /// The checksums computed, for the algorithms the client used (to echo
    /// them back, as S3 does).
    pub checksum: Checksum,
}

/// Reads `body`, at most `limit` bytes (else `EntityTooLarge`), and checks
/// it against `expected` (else `BadDigest`, or `InvalidDigest` for a
/// malformed `Content-MD5`).
pub(crate) async fn read(
    body: Option<StreamingBlob>,
    declared_length: Option<i64>,
    limit: u64,
    mut expected: Expected,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Read> {
    if let Some(length) = declared_length
        && u64::try_from(length).unwrap_or(0) > limit
    {
        return Err(too_large(limit));
    }
    let mut hasher = hasher_for(&expected)?;
    let mut md5 = expected.content_md5.is_some().then(md5::Md5::default);
    // Sized once when the length is known (never past the limit).
    let declared = declared_length.and_then(|n| u64::try_from(n).ok());
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(body_error)?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            hasher.update(&chunk);
            if let Some(md5) = &mut md5 {
                md5::Digest::update(md5, &chunk);
            }
            buf.extend_from_slice(&chunk);
        }
    }
    if let Some(trailers) = trailers.and_then(|t| t.take()) {
        let take = |name: &str| -> S3Result<Option<String>> {
            trailers
                .get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .map_err(|_| s3_error!(InvalidArgument, "invalid trailer {name}"))
                })
                .transpose()
        };
        let c = &mut expected.checksum;
        for (name, slot) in [
            ("x-amz-checksum-crc32", &mut c.checksum_crc32),
            ("x-amz-checksum-crc32c", &mut c.checksum_crc32c),
            ("x-amz-checksum-sha1", &mut c.checksum_sha1),
            ("x-amz-checksum-sha256", &mut c.checksum_sha256),
            ("x-amz-checksum-crc64nvme", &mut c.checksum_crc64nvme),
        ] {
            if let Some(value) = take(name)? {
                *slot = Some(value);
            }
        }
    }
    let computed = hasher.finalize();
    check(&computed, &expected.checksum)?;
    if let (Some(given), Some(md5)) = (&expected.content_md5, md5) {
        use base64::Engine as _;
        let given = base64::engine::general_purpose::STANDARD
            .decode(given)
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| {
                s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
        if given[..] != md5::Digest::finalize(md5)[..] {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
    }
    Ok(Read {
        bytes: buf.freeze(),
        checksum: computed,
    })
}

pub(crate) fn too_large(limit: u64) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::EntityTooLarge,
        format!("Your proposed upload exceeds the maximum allowed size of {limit} bytes"),
    )
}

/// A body that could not be read: s3s's signature or payload hash checks
/// failing on the way, or the client going away.
fn body_error(e: s3s::StdError) -> S3Error {
    let text = e.to_string();
    if text.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided."
        )
    } else if text.contains("Sha256Mismatch") {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        e
    } else {
        S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("the request body could not be read: {text}"),
        )
    }
}

fn hasher_for(expected: &Expected) -> S3Result<ChecksumHasher> {
    let mut hasher = ChecksumHasher::default();
    let c = &expected.checksum;
    if c.checksum_crc32.is_some() {
        hasher.crc32 = Some(Default::default());
    }
    if c.checksum_crc32c.is_some() {
        hasher.crc32c = Some(Default::default());
    }
    if c.checksum_sha1.is_some() {
        hasher.sha1 = Some(Default::default());
    }
    if c.checksum_sha256.is_some() {
        hasher.sha256 = Some(Default::default());
    }
    if c.checksum_crc64nvme.is_some() {
        hasher.crc64nvme = Some(Default::default());
    }
    if let Some(algorithm) = &expected.algorithm {
        match algorithm.as_str() {
            ChecksumAlgorithm::CRC32 => hasher.crc32 = Some(Default::default()),
            ChecksumAlgorithm::CRC32C => hasher.crc32c = Some(Default::default()),
            ChecksumAlgorithm::SHA1 => hasher.sha1 = Some(Default::default()),
            ChecksumAlgorithm::SHA256 => hasher.sha256 = Some(Default::default()),
            ChecksumAlgorithm::CRC64NVME => hasher.crc64nvme = Some(Default::default()),
            other => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("the checksum algorithm {other} is not supported"),
                ));
            }
        }
    }
    Ok(hasher)
}

fn check(computed: &Checksum, expected: &Checksum) -> S3Result<()> {
    for (name, want, got) in [
        ("CRC32", &expected.checksum_crc32, &computed.checksum_crc32),
        (
            "CRC32C",
            &expected.checksum_crc32c,
            &computed.checksum_crc32c,
        ),
        ("SHA1", &expected.checksum_sha1, &computed.checksum_sha1),
        (
            "SHA256",
            &expected.checksum_sha256,
            &computed.checksum_sha256,
        ),
        (
            "CRC64NVME",
            &expected.checksum_crc64nvme,
            &computed.checksum_crc64nvme,
        ),
    ] {
        if let Some(want) = want
            && Some(want) != got.as_ref()
        {
            return Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!("The {name} you specified did not match the calculated checksum."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_with(expected: Expected, limit: u64) -> S3Result<Read> {
        let body = StreamingBlob::from(s3s::Body::from(Bytes::from_static(b"hello")));
        read(Some(body), None, limit, expected, None).await
    }

    #[tokio::test]
    async fn checksums_given_are_checked_and_the_ones_used_computed() {
        let expected = Expected {
            checksum: Checksum {
                checksum_crc32: Some("NhCmhg==".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        let read = read_with(expected, 5).await.unwrap();
        assert_eq!(read.bytes, "hello");
        assert_eq!(read.checksum.checksum_crc32.as_deref(), Some("NhCmhg=="));
        let wrong = Expected {
            checksum: Checksum {
                checksum_crc32: Some("AAAAAA==".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        let refused = read_with(wrong, 5).await.err().unwrap();
        assert_eq!(*refused.code(), S3ErrorCode::BadDigest);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_or_with_a_wrong_md5_is_refused() {
        let refused = read_with(Expected::default(), 4).await.err().unwrap();
        assert_eq!(*refused.code(), S3ErrorCode::EntityTooLarge);
        let md5 = Expected {
            content_md5: Some("XUFAKrxLKna5cZ2REBfFkg==".to_owned()),
            ..Default::default()
        };
        assert!(read_with(md5, 5).await.is_ok());
        let wrong = Expected {
            content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".to_owned()),
            ..Default::default()
        };
        let refused = read_with(wrong, 5).await.err().unwrap();
        assert_eq!(*refused.code(), S3ErrorCode::BadDigest);
    }

    #[test]
    fn the_trailer_header_names_the_algorithm_to_compute() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-sha256".parse().unwrap());
        let expected = Expected::default().with_trailer(&headers);
        assert_eq!(
            expected.algorithm.as_ref().map(ChecksumAlgorithm::as_str),
            Some(ChecksumAlgorithm::SHA256)
        );
    }
}
