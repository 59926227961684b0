//! AWS JSON 1.0: the operation in `X-Amz-Target` (`AmazonSQS.ACTION`), its
//! input a JSON object; answers are JSON objects, errors carry `__type`
//! (`com.amazonaws.sqs#SHAPE`) and `x-amzn-query-error: CODE;Sender`,
//! which current SDKs of this query-compatible service map to their typed
//! exceptions.

use super::response;
use crate::error::SqsError;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const TARGET_PREFIX: &str = "AmazonSQS.";

pub fn decode(parts: &http::request::Parts, body: &[u8]) -> Result<(String, Value), SqsError> {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| SqsError::missing("X-Amz-Target"))?;
    let Some(action) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(SqsError::new(
            crate::error::SqsErrorKind::InvalidAction,
            format!("`{target}` is not an SQS operation: X-Amz-Target is AmazonSQS.ACTION"),
        ));
    };
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| SqsError::invalid(format!("the request body is not valid JSON: {e}")))?
    };
    if !input.is_object() {
        return Err(SqsError::invalid("the request body must be a JSON object"));
    }
    Ok((action.to_owned(), input))
}

pub fn answer(output: &Value, request_id: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::to_vec(output).expect("a JSON value serializes");
    response(http::StatusCode::OK, CONTENT_TYPE, request_id, body)
}

pub fn error(error: &SqsError, request_id: &str) -> http::Response<Full<Bytes>> {
    let body = json!({
        "__type": format!("com.amazonaws.sqs#{}", error.kind.name()),
        "message": error.message,
    });
    let mut response = response(
        error.kind.status(),
        CONTENT_TYPE,
        request_id,
        serde_json::to_vec(&body).expect("a JSON value serializes"),
    );
    let query_error = format!("{};{}", error.kind.query_code(), error.kind.fault());
    response.headers_mut().insert(
        "x-amzn-query-error",
        http::HeaderValue::from_str(&query_error).expect("codes are ASCII"),
    );
    response
}
