//! Multipart uploads.

use nimbus_bucket::Buckets;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

pub(crate) async fn create(
    _buckets: &Buckets,
    _req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    Err(s3_error!(NotImplemented))
}

pub(crate) async fn upload_part(
    _buckets: &Buckets,
    _req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    Err(s3_error!(NotImplemented))
}

pub(crate) async fn complete(
    _buckets: &Buckets,
    _req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    Err(s3_error!(NotImplemented))
}

pub(crate) async fn abort(
    _buckets: &Buckets,
    _req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    Err(s3_error!(NotImplemented))
}

pub(crate) async fn list_parts(
    _buckets: &Buckets,
    _req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    Err(s3_error!(NotImplemented))
}
