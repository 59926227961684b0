//! The S3 endpoint (`--s3-listen`): the S3 wire protocol over the served
//! version's buckets, every request signed with an access key and checked
//! against its grants.
//!
//! `s3s` parses requests, verifies SigV4 (headers, presigned URLs,
//! `aws-chunked` bodies) with the secret [`auth::KeyAuth`] looks up, and
//! writes the XML; [`auth::Grants`] refuses what the key has no grant for
//! before an operation runs; the operations themselves (`objects`, `list`,
//! `multipart`) go through `nimbus_bucket::Buckets`, so an object written
//! here is stored, limited and announced to object triggers exactly as one
//! written through `/v1` or a function. Buckets are named in the path, and
//! in the host too when the endpoint has a domain ([`host`]).

mod auth;
mod body;
mod error;
mod host;
mod list;
mod multipart;
mod objects;
mod service;

use nimbus_access::AccessKeys;
use nimbus_bucket::Buckets;
use nimbus_gateway::{Handler, RequestBody};
use std::net::SocketAddr;
use std::sync::Arc;

pub use host::InvalidDomain;

/// Whether `domain` can be the endpoint's `--s3-domain`.
pub fn check_domain(domain: &str) -> Result<(), InvalidDomain> {
    host::BucketDomain::new(domain).map(drop)
}

/// The buckets of the version being served now.
pub type CurrentBuckets = Arc<dyn Fn() -> Arc<Buckets> + Send + Sync>;

/// Most bytes of an XML request body (DeleteObjects with 1,000 keys of
/// 1,024 bytes, CompleteMultipartUpload with 10,000 parts, fit).
const MAX_XML_BODY_BYTES: usize = 4 << 20;

/// Answers S3 requests.
pub struct S3Endpoint {
    service: s3s::service::S3Service,
}

impl S3Endpoint {
    /// The endpoint over `buckets`; with `domain`, hosts under it name
    /// their bucket (`photos.DOMAIN`) besides path-style requests.
    pub fn new(
        buckets: CurrentBuckets,
        keys: Arc<AccessKeys>,
        domain: Option<&str>,
    ) -> Result<Self, InvalidDomain> {
        let mut builder = s3s::service::S3ServiceBuilder::new(service::NimbusS3::new(buckets));
        if let Some(domain) = domain {
            builder.set_host(host::BucketDomain::new(domain)?);
        }
        builder.set_auth(auth::KeyAuth::new(keys.clone()));
        builder.set_access(auth::Grants::new(keys));
        builder.set_validation(auth::BucketNames);
        let mut config = s3s::config::S3Config::default();
        config.xml_max_body_size = MAX_XML_BODY_BYTES;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            config,
        ))));
        Ok(S3Endpoint {
            service: builder.build(),
        })
    }
}

impl Handler for S3Endpoint {
    type Body = s3s::Body;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        _local: SocketAddr,
    ) -> hyper::Response<Self::Body> {
        // The body streams into s3s as the operation reads it.
        let request = request.map(s3s::Body::http_body_unsync);
        match self.service.call(request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!("the S3 request failed outside any operation: {e:?}");
                error::internal_response()
            }
        }
    }
}
