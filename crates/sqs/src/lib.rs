//! The SQS endpoint (`--sqs-listen`): the SQS JSON 1.0 and query protocols
//! over Nimbus queues, every request signed with an access key and checked
//! against its grants.
//!
//! A request's body is read up to [`MAX_REQUEST_BYTES`], its signature
//! checked (`auth`), its protocol's codec (`protocol`) turns it into an
//! operation and its input, the operation layer (`ops`) checks the key's
//! grant and runs it on the store, and the same codec writes the answer or
//! the error. Only the queues the version being served declares are
//! reachable; queues are created and changed through nimbus.toml, never
//! through SQS.
//!
//! What differs from AWS, by choice: CreateQueue answers for declared
//! queues only, and refuses attributes other than the declared ones
//! (`QueueNameExists`, as SQS does for an existing queue); SetQueueAttributes,
//! DeleteQueue, tags and permissions are `UnsupportedOperation`.
//! `MessageDeduplicationId` is Nimbus's `dedup_id` (standard queues dedup
//! within the queue's window); `MessageGroupId` (FIFO) is refused.
//! `SenderId` and sequence numbers are not kept, so receives give
//! `ApproximateReceiveCount`, `SentTimestamp` and
//! `ApproximateFirstReceiveTimestamp` only. Typed attributes are stored as plain strings (see `attributes`).
//! A body that is not UTF-8 (sent through `/v1`) is received with U+FFFD
//! in place of what is not text.

pub mod attributes;
pub mod auth;
pub mod error;
mod ops;
pub mod protocol;

use bytes::Bytes;
use error::{SqsError, SqsErrorKind};
use http_body_util::{BodyExt, Full, Limited};
use nimbus_access::AccessKeys;
use nimbus_gateway::{Handler, RequestBody};
use nimbus_store::{QueueSignals, QueueStore};
use protocol::Protocol;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// The queues the version being served now declares (`[queue.NAME]`; no
/// internal queue): the ones clients may reach.
pub type CurrentQueues = Arc<dyn Fn() -> Arc<BTreeSet<String>> + Send + Sync>;

/// Largest request body read: a batch of the largest messages SQS allows
/// (1 MiB in all) form-encoded, where a byte may take three characters,
/// with room for the other parameters. Larger bodies are refused unread.
pub const MAX_REQUEST_BYTES: usize = 3 * (1 << 20) + (64 << 10);
/// The service a request's credential scope must name.
const SERVICE: &str = "sqs";
/// The region ARNs name when a request names none (it always does once
/// signed; this is for errors before that).
const DEFAULT_REGION: &str = "us-east-1";

/// Answers SQS requests.
pub struct SqsEndpoint {
    store: Arc<dyn QueueStore>,
    signals: QueueSignals,
    queues: CurrentQueues,
    keys: Arc<AccessKeys>,
    scheme: &'static str,
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
            scheme: "http",
        }
    }

    /// Says the listener speaks HTTPS, so queue URLs start with `https://`.
    pub fn https(mut self, https: bool) -> Self {
        self.scheme = if https { "https" } else { "http" };
        self
    }

    async fn serve(
        &self,
        parts: http::request::Parts,
        body: RequestBody,
        protocol: Protocol,
    ) -> Result<(String, Value), SqsError> {
        let too_large = || {
            SqsError::new(
                SqsErrorKind::RequestEntityTooLarge,
                format!("the request body is over {MAX_REQUEST_BYTES} bytes"),
            )
        };
        let declared_length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
            return Err(too_large());
        }
        let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => return Err(SqsError::invalid("the request body could not be read")),
        };
        let credential = auth::credential(&parts);
        let key = match &credential {
            Some(c) => self.keys.lookup(&c.key_id).await.map_err(|e| {
                tracing::error!(error = %e, "sqs: access key lookup failed");
                SqsError::new(SqsErrorKind::InternalError, "internal error")
            })?,
            None => None,
        };
        let (parts, body) = auth::verify(
            http::Request::from_parts(parts, body),
            SERVICE,
            key.clone(),
            chrono::Utc::now(),
        )
        .await?;
        let Some(key) = key else {
            return Err(SqsError::new(
                SqsErrorKind::InvalidClientTokenId,
                "unknown key",
            ));
        };
        let region = credential.map_or_else(|| DEFAULT_REGION.to_owned(), |c| c.region);
        let (action, input) = protocol.decode(&parts, &body)?;
        let base_url = format!("{}://{}", self.scheme, host(&parts));
        let context = ops::Context {
            endpoint: self,
            key: &key,
            region: &region,
            base_url: &base_url,
        };
        let output = ops::run(&context, &action, input).await?;
        Ok((action, output))
    }
}

/// The host clients reached the endpoint by (queue URLs name it), if it is
/// a plausible host and port; `localhost` otherwise.
fn host(parts: &http::request::Parts) -> String {
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if plausible {
        host.to_owned()
    } else {
        "localhost".to_owned()
    }
}

impl Handler for SqsEndpoint {
    type Body = Full<Bytes>;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        _local: SocketAddr,
    ) -> hyper::Response<Self::Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = request.into_parts();
        let protocol = Protocol::of(&parts);
        match self.serve(parts, body, protocol).await {
            Ok((action, output)) => protocol.answer(&action, &output, &request_id),
            Err(error) => {
                tracing::debug!(code = error.kind.name(), message = %error.message, request_id, "sqs: refused");
                protocol.error(&error, &request_id)
            }
        }
    }
}
