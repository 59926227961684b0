//! Who may do what: the signing secret of an access key for s3s's SigV4
//! check ([`KeyAuth`]), and the key's grants checked for each operation
//! before it touches a bucket ([`Grants`]). Nothing is reachable without a
//! grant: an unsigned request, an operation this endpoint does not serve
//! and an action no grant allows are all refused here.

use nimbus_access::{AccessKey, AccessKeys, Action};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::{S3Request, S3Result, s3_error};
use std::sync::Arc;

/// Looks the access key id of a signed request up, for its secret.
pub(crate) struct KeyAuth {
    keys: Arc<AccessKeys>,
}

impl KeyAuth {
    pub(crate) fn new(keys: Arc<AccessKeys>) -> Self {
        KeyAuth { keys }
    }
}

async fn lookup(keys: &AccessKeys, id: &str) -> S3Result<Arc<AccessKey>> {
    match keys.lookup(id).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        )),
        Err(e) => {
            tracing::error!("could not look an access key up: {e}");
            Err(s3_error!(
                InternalError,
                "the access keys could not be read"
            ))
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let key = lookup(&self.keys, access_key).await?;
        Ok(SecretKey::from(key.secret.as_str()))
    }
}

/// Names a bucket may have in a request: Nimbus's (which allow `_`, unlike
/// S3's) and any other S3 allows, which then is simply not found.
pub(crate) struct BucketNames;

impl s3s::validation::NameValidation for BucketNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        nimbus_bucket::is_bucket_name(name) || s3s::path::check_bucket_name(name)
    }
}

/// The operations this endpoint serves; every other one is refused before
/// its input is read.
const SERVED: &[&str] = &[
    "ListBuckets",
    "HeadBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "GetObject",
    "HeadObject",
    "GetObjectTagging",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
];

/// The signing key of a request that passed [`Grants::check`].
pub(crate) fn signer<T>(req: &S3Request<T>) -> S3Result<Arc<AccessKey>> {
    req.extensions
        .get::<Arc<AccessKey>>()
        .cloned()
        .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))
}

fn allow<T>(req: &S3Request<T>, action: Action<'_>) -> S3Result<()> {
    if signer(req)?.allows(action) {
        Ok(())
    } else {
        Err(denied())
    }
}

pub(crate) fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// Checks each operation against the signing key's grants.
pub(crate) struct Grants {
    keys: Arc<AccessKeys>,
}

impl Grants {
    pub(crate) fn new(keys: Arc<AccessKeys>) -> Self {
        Grants { keys }
    }
}

#[async_trait::async_trait]
impl S3Access for Grants {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Requests must be signed"));
        };
        let key = lookup(&self.keys, &credentials.access_key).await?;
        if !SERVED.contains(&cx.s3_op().name()) {
            return Err(s3_error!(
                NotImplemented,
                "Nimbus does not serve {}",
                cx.s3_op().name()
            ));
        }
        cx.extensions_mut().insert(key);
        Ok(())
    }

    async fn list_buckets(&self, req: &mut S3Request<ListBucketsInput>) -> S3Result<()> {
        // Lists only the buckets the key has a grant on.
        signer(req).map(drop)
    }

    async fn head_bucket(&self, req: &mut S3Request<HeadBucketInput>) -> S3Result<()> {
        allow(req, Action::BucketSee(&req.input.bucket))
    }

    async fn get_bucket_location(
        &self,
        req: &mut S3Request<GetBucketLocationInput>,
    ) -> S3Result<()> {
        allow(req, Action::BucketSee(&req.input.bucket))
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        let prefix = req.input.prefix.as_deref().unwrap_or_default();
        allow(
            req,
            Action::BucketList {
                bucket: &req.input.bucket,
                prefix,
            },
        )
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        let prefix = req.input.prefix.as_deref().unwrap_or_default();
        allow(
            req,
            Action::BucketList {
                bucket: &req.input.bucket,
                prefix,
            },
        )
    }

    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketRead {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketRead {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn get_object_tagging(&self, req: &mut S3Request<GetObjectTaggingInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketRead {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // Some grant on the bucket; each key is then checked for a write
        // grant, and one without is an `AccessDenied` in the result.
        allow(req, Action::BucketSee(&req.input.bucket))
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )?;
        match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => {
                allow(req, Action::BucketRead { bucket, key })
            }
            _ => Err(s3_error!(NotImplemented, "Nimbus copies from buckets only")),
        }
    }

    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )?;
        match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => {
                allow(req, Action::BucketRead { bucket, key })
            }
            _ => Err(s3_error!(NotImplemented, "Nimbus copies from buckets only")),
        }
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        // Whoever may write the object may see how its upload stands.
        allow(
            req,
            Action::BucketWrite {
                bucket: &req.input.bucket,
                key: &req.input.key,
            },
        )
    }

    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        // Uploads in progress name keys: seeing them is listing the prefix.
        let prefix = req.input.prefix.as_deref().unwrap_or_default();
        allow(
            req,
            Action::BucketList {
                bucket: &req.input.bucket,
                prefix,
            },
        )
    }
}
