//! Upload bodies as they stream to the bucket (which enforces the object
//! limit and takes the MD5, the ETag, on the way): the checksums the client
//! sent computed as the bytes pass and checked once the body has ended,
//! before the object or part exists: `Content-MD5`, and `x-amz-checksum-*`
//! as a header or as a trailer of an `aws-chunked` body (s3s has decoded
//! the chunks and verified their signatures by then). And object bodies
//! streamed out to GetObject as the bucket reads them ([`download`]).

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use nimbus_bucket::{BucketError, ObjectStream};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::stream::{ByteStream, RemainingLength};
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

/// An upload body as it arrives, its checksums taken on the way; s3s's
/// failures (a bad chunk signature, a client gone) become S3 errors.
pub(crate) struct Checked {
    body: Option<StreamingBlob>,
    hasher: ChecksumHasher,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
}

/// Begins reading `body`: refused at once (`EntityTooLarge`) when its
/// declared length passes `limit`, and for an unsupported checksum
/// algorithm. The size limit itself is enforced as the bytes are written.
pub(crate) fn checked(
    body: Option<StreamingBlob>,
    declared_length: Option<i64>,
    limit: u64,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Checked> {
    if let Some(length) = declared_length
        && u64::try_from(length).unwrap_or(0) > limit
    {
        return Err(too_large(limit));
    }
    Ok(Checked {
        body,
        hasher: hasher_for(&expected)?,
        expected,
        trailers,
    })
}

impl futures::Stream for Checked {
    type Item = S3Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(body) = &mut this.body else {
            return std::task::Poll::Ready(None);
        };
        match body.poll_next_unpin(cx) {
            std::task::Poll::Ready(Some(Ok(chunk))) => {
                this.hasher.update(&chunk);
                std::task::Poll::Ready(Some(Ok(chunk)))
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                std::task::Poll::Ready(Some(Err(body_error(e))))
            }
            std::task::Poll::Ready(None) => {
                this.body = None;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl Checked {
    /// Once the whole body is read: checks it against the checksums given
    /// (trailers included; else `BadDigest`, or `InvalidDigest` for a
    /// malformed `Content-MD5`, compared with `md5`, the body's) and
    /// returns those computed, for the algorithms the client used (to echo
    /// them back, as S3 does).
    pub(crate) fn finish(self, md5: Option<[u8; 16]>) -> S3Result<Checksum> {
        let mut expected = self.expected;
        if let Some(trailers) = self.trailers.and_then(|t| t.take()) {
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
        let computed = self.hasher.finalize();
        check(&computed, &expected.checksum)?;
        if let Some(given) = &expected.content_md5 {
            use base64::Engine as _;
            let given = base64::engine::general_purpose::STANDARD
                .decode(given)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
                })?;
            if md5.is_none_or(|md5| given[..] != md5[..]) {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        Ok(computed)
    }
}

/// An object's bytes as GetObject sends them, read from the bucket as they
/// go out, their length known (so `Content-Length` is exact). A failure
/// mid-way is an error of the body, which makes the server cut the
/// response off rather than end it as if complete.
pub(crate) fn download(got: ObjectStream) -> StreamingBlob {
    let remaining = got.content_length();
    StreamingBlob::new(Download {
        // A `Mutex` only to make the stream `Sync`, as s3s asks: it is
        // reached through `&mut` (`get_mut`), never locked.
        body: std::sync::Mutex::new(got.body),
        remaining,
    })
}

struct Download {
    body: std::sync::Mutex<BoxStream<'static, Result<Bytes, BucketError>>>,
    remaining: u64,
}

impl futures::Stream for Download {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let body = this.body.get_mut().unwrap_or_else(|e| e.into_inner());
        match body.poll_next_unpin(cx) {
            std::task::Poll::Ready(Some(Ok(chunk))) => {
                this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                std::task::Poll::Ready(Some(Ok(chunk)))
            }
            std::task::Poll::Ready(Some(Err(e))) => {
                tracing::error!("an S3 GetObject failed after its headers went out: {e}");
                std::task::Poll::Ready(Some(Err(Box::new(e))))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl ByteStream for Download {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(usize::try_from(self.remaining).unwrap_or(usize::MAX))
    }
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

    /// Reads "hello" as an upload would, the size limit enforced by the
    /// caller as the bucket does.
    async fn read_with(expected: Expected, limit: u64) -> S3Result<Read> {
        let body = StreamingBlob::from(s3s::Body::from(Bytes::from_static(b"hello")));
        let mut checked = checked(Some(body), None, limit, expected, None)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = checked.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > limit {
                return Err(too_large(limit));
            }
        }
        let md5: [u8; 16] =
            md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(&bytes)).into();
        let checksum = checked.finish(Some(md5))?;
        Ok(Read {
            bytes: Bytes::from(bytes),
            checksum,
        })
    }

    struct Read {
        bytes: Bytes,
        checksum: Checksum,
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
