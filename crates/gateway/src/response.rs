//! Responses the gateway makes itself: a status, a JSON body that says what
//! went wrong, and the headers a client can act on.

use http::{HeaderValue, StatusCode, header};
use nimbus_engine::{ResponseBody, full_body};

/// Header carrying the invocation id on every response from a function.
pub const INVOCATION_ID_HEADER: &str = "x-nimbus-invocation-id";

/// A JSON error response: `{"error": message}` plus the invocation id when
/// an invocation took place.
pub fn error(
    status: StatusCode,
    message: &str,
    invocation_id: Option<&str>,
) -> hyper::Response<ResponseBody> {
    let mut body = serde_json::json!({ "error": message });
    if let Some(id) = invocation_id {
        body["invocation_id"] = id.into();
    }
    let mut response = hyper::Response::new(full_body(body.to_string() + "\n"));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = invocation_id
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(INVOCATION_ID_HEADER, value);
    }
    response
}
