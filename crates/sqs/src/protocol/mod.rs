//! The two wire protocols SQS clients speak, each a codec between HTTP and
//! the operation layer's JSON values (the shapes of the AWS JSON 1.0
//! protocol): `json` (AWS JSON 1.0, `X-Amz-Target: AmazonSQS.ACTION`;
//! current SDKs and AWS CLI) and `query` (form-encoded `Action=...`, XML
//! answers; older SDKs and Debian's awscli).

pub mod json;
pub mod query;

use crate::error::SqsError;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

/// The protocol a request speaks, and so its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Query,
}

impl Protocol {
    /// JSON when the request names its operation in `X-Amz-Target` or
    /// says it is `application/x-amz-json-1.0`; the query protocol
    /// otherwise.
    pub fn of(parts: &http::request::Parts) -> Protocol {
        let json_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-amz-json"));
        if parts.headers.contains_key("x-amz-target") || json_type {
            Protocol::Json
        } else {
            Protocol::Query
        }
    }

    /// The operation's name and input.
    pub fn decode(
        self,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<(String, Value), SqsError> {
        match self {
            Protocol::Json => json::decode(parts, body),
            Protocol::Query => query::decode(parts, body),
        }
    }

    pub fn answer(
        self,
        action: &str,
        output: &Value,
        request_id: &str,
    ) -> http::Response<Full<Bytes>> {
        match self {
            Protocol::Json => json::answer(output, request_id),
            Protocol::Query => query::answer(action, output, request_id),
        }
    }

    pub fn error(self, error: &SqsError, request_id: &str) -> http::Response<Full<Bytes>> {
        match self {
            Protocol::Json => json::error(error, request_id),
            Protocol::Query => query::error(error, request_id),
        }
    }
}

/// A response with its status, content type, request id and body.
fn response(
    status: http::StatusCode,
    content_type: &'static str,
    request_id: &str,
    body: Vec<u8>,
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    if let Ok(id) = http::HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}
