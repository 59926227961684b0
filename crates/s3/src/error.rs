//! Nimbus's bucket errors as the S3 error codes SDKs map to exceptions;
//! storage failures are logged here and answered without their details.

use nimbus_bucket::BucketError;
use nimbus_store::StoreError;
use s3s::{S3Error, S3ErrorCode, s3_error};

pub(crate) fn from_bucket(e: BucketError) -> S3Error {
    match e {
        BucketError::NoSuchBucket(_) => {
            s3_error!(NoSuchBucket, "The specified bucket does not exist")
        }
        BucketError::NoSuchKey(_) => s3_error!(NoSuchKey, "The specified key does not exist."),
        BucketError::InvalidKey(why) => invalid_key(&why),
        BucketError::Invalid(why) if why.starts_with("user metadata is") => {
            S3Error::with_message(S3ErrorCode::MetadataTooLarge, why)
        }
        BucketError::Invalid(why) => S3Error::with_message(S3ErrorCode::InvalidArgument, why),
        e @ BucketError::TooLarge { .. } => {
            S3Error::with_message(S3ErrorCode::EntityTooLarge, e.to_string())
        }
        BucketError::RangeNotSatisfiable { .. } => {
            s3_error!(InvalidRange, "The requested range is not satisfiable")
        }
        BucketError::Declared(_) => s3_error!(InvalidRequest, "the bucket is declared"),
        BucketError::Store(StoreError::Unavailable(e)) => {
            tracing::error!("the store is unavailable: {e}");
            s3_error!(ServiceUnavailable, "Please reduce your request rate.")
        }
        e @ (BucketError::Store(_) | BucketError::Blob(_)) => {
            tracing::error!("an S3 request failed: {e}");
            s3_error!(
                InternalError,
                "We encountered an internal error. Please try again."
            )
        }
    }
}

/// A streamed upload's failure: its body's own S3 error (a signature or
/// checksum refused), or the bucket's.
pub(crate) fn from_upload(e: nimbus_bucket::UploadError<S3Error>) -> S3Error {
    match e {
        nimbus_bucket::UploadError::Body(e) => e,
        nimbus_bucket::UploadError::Bucket(e) => from_bucket(e),
    }
}

/// A copy's failure: reading its source (the body streamed in) or storing
/// it, both the bucket's errors.
pub(crate) fn from_read_upload(e: nimbus_bucket::UploadError<BucketError>) -> S3Error {
    match e {
        nimbus_bucket::UploadError::Body(e) | nimbus_bucket::UploadError::Bucket(e) => {
            from_bucket(e)
        }
    }
}

/// A key Nimbus's key rule refuses: too long is S3's own code, anything
/// else (a `..` segment, a leading `/`, a control character) is an
/// argument S3 clients report as given.
pub(crate) fn invalid_key(why: &str) -> S3Error {
    if why.contains("over the limit") {
        S3Error::with_message(S3ErrorCode::KeyTooLongError, format!("invalid key: {why}"))
    } else {
        S3Error::with_message(S3ErrorCode::InvalidArgument, format!("invalid key: {why}"))
    }
}

/// The answer to a request that failed outside any operation.
pub(crate) fn internal_response() -> hyper::Response<s3s::Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
    let mut response = hyper::Response::new(s3s::Body::from(body.to_owned()));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}
