//! `/v1/functions`: list the app's functions and invoke an event function
//! directly, synchronously, with one event.

use super::{ApiError, ApiState};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nimbus_engine::{Event, InvokeError};
use serde_json::json;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/functions", get(list_functions))
        .route("/v1/functions/{name}/invoke", post(invoke))
        .route("/v1/functions/{name}/invoke-async", post(invoke_async))
}

async fn list_functions(State(state): State<ApiState>) -> Response {
    let app = state.app();
    let mut functions: Vec<_> = app
        .functions
        .event
        .keys()
        .map(|name| json!({ "name": name, "kind": "event" }))
        .chain(
            app.functions
                .http
                .iter()
                .map(|name| json!({ "name": name, "kind": "http" })),
        )
        .collect();
    functions.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    axum::Json(json!({ "functions": functions })).into_response()
}

/// The request body is the event's data; its `content-type` becomes the
/// event's `datacontenttype`. Answers once the function has run.
async fn invoke(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let function = event_function(&state, &name)?;
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let event = Event {
        id: invocation_id.clone(),
        source: "nimbus:invoke".to_owned(),
        type_: "nimbus.invoke".to_owned(),
        subject: None,
        time: nimbus_engine::rfc3339_now(),
        datacontenttype: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        data: body.to_vec(),
        attempt: 1,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let trigger = nimbus_engine::Trigger::new(nimbus_engine::TriggerKind::Invoke, "/v1");
    let (status, outcome) = match function.invoke(vec![event], &invocation_id, trigger).await {
        Ok(failed) => (
            StatusCode::OK,
            json!({ "invocation_id": invocation_id, "failed": !failed.is_empty() }),
        ),
        Err(e @ InvokeError::DeadlineExceeded { .. }) => (
            StatusCode::GATEWAY_TIMEOUT,
            json!({ "invocation_id": invocation_id, "error": e.to_string() }),
        ),
        Err(InvokeError::Busy) => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "invocation_id": invocation_id, "error": "function is at its concurrency limit" }),
        ),
        // Details are in the log under the invocation id.
        Err(InvokeError::Failed(_)) => (
            StatusCode::BAD_GATEWAY,
            json!({ "invocation_id": invocation_id, "error": "function failed; the server log has details under this invocation id" }),
        ),
    };
    Ok((status, axum::Json(outcome)).into_response())
}

/// Queues one event for the function and answers 202 once it is durable;
/// the function runs later, with retries and destinations as configured.
async fn invoke_async(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    event_function(&state, &name)?;
    let mut attributes = std::collections::BTreeMap::new();
    for (header, attribute) in [
        (header::CONTENT_TYPE.as_str(), "content-type"),
        ("traceparent", "traceparent"),
    ] {
        if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
            attributes.insert(attribute.to_owned(), value.to_owned());
        }
    }
    let event_id =
        nimbus_dispatch::invoke::enqueue(state.queues.as_ref(), &name, body.to_vec(), attributes)
            .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "event_id": event_id })),
    )
        .into_response())
}

/// The event function `name`, or why it cannot be invoked.
fn event_function(
    state: &ApiState,
    name: &str,
) -> Result<std::sync::Arc<nimbus_engine::EventFunction>, ApiError> {
    let app = state.app();
    if let Some(function) = app.functions.event.get(name) {
        return Ok(function.clone());
    }
    if app.functions.http.contains(name) {
        return Err(ApiError::bad_request(format!(
            "function `{name}` is an HTTP function: call it through its routes on the gateway"
        )));
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("function `{name}` does not exist"),
    ))
}
