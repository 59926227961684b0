//! The SQS endpoint (`--sqs-listen`): the SQS JSON 1.0 and query protocols
//! over Nimbus queues, every request signed with an access key and checked
//! against its grants.

use bytes::Bytes;
use http_body_util::Full;
use nimbus_access::AccessKeys;
use nimbus_gateway::{Handler, RequestBody};
use nimbus_store::{QueueSignals, QueueStore};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// The queues the version being served now declares (`[queue.NAME]`; no
/// internal queue): the ones clients may reach.
pub type CurrentQueues = Arc<dyn Fn() -> Arc<BTreeSet<String>> + Send + Sync>;

/// Answers SQS requests.
#[allow(dead_code)]
pub struct SqsEndpoint {
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    queues: CurrentQueues,
    keys: Arc<AccessKeys>,
}

impl SqsEndpoint {
    pub fn new(
        store: Arc<dyn QueueStore>,
        signals: QueueSignals,
        queues: CurrentQueues,
        keys: Arc<AccessKeys>,
    ) -> Self {
        SqsEndpoint {
            store,
            signals,
            queues,
            keys,
        }
    }
}

impl Handler for SqsEndpoint {
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
