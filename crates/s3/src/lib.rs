//! The S3 endpoint (`--s3-listen`): the S3 wire protocol over the served
//! version's buckets, every request signed with an access key and checked
//! against its grants.

use bytes::Bytes;
use http_body_util::Full;
use nimbus_access::AccessKeys;
use nimbus_bucket::Buckets;
use nimbus_gateway::{Handler, RequestBody};
use std::net::SocketAddr;
use std::sync::Arc;

/// The buckets of the version being served now.
pub type CurrentBuckets = Arc<dyn Fn() -> Arc<Buckets> + Send + Sync>;

/// Answers S3 requests.
pub struct S3Endpoint {
    #[allow(dead_code)]
    buckets: CurrentBuckets,
    #[allow(dead_code)]
    keys: Arc<AccessKeys>,
}

impl S3Endpoint {
    pub fn new(buckets: CurrentBuckets, keys: Arc<AccessKeys>) -> Self {
        S3Endpoint { buckets, keys }
    }
}

impl Handler for S3Endpoint {
    type Body = Full<Bytes>;

    async fn handle(
        self: Arc<Self>,
        _request: hyper::Request<RequestBody>,
        _local: SocketAddr,
    ) -> hyper::Response<Self::Body> {
        let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"not yet")));
        *response.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
        response
    }
}
