//! The `/v1` admin API: JSON in, JSON out, every error a status with
//! `{"error": "..."}`. The OpenAPI document is served at `/v1/openapi.json`.

mod access_keys;
mod buckets;
mod cluster;
pub mod deployments;
mod functions;
mod invocations;
mod keys;
mod queues;
mod schedules;
mod secrets;
mod tables;
mod traces;
mod usage;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nimbus_store::{HistoryStore, QueueSignals, QueueStore, StoreError};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The OpenAPI 3.1 description of `/v1`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body the API reads (a batch of ten 1 MiB messages in base64).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// What `/v1` handlers reach.
#[derive(Clone)]
pub struct ApiState {
    pub queues: Arc<dyn QueueStore>,
    pub waiters: QueueSignals,
    /// What the deployment being served declares.
    pub app: Arc<crate::Live<AppView>>,
    pub secrets: Arc<nimbus_vault::Vault>,
    /// API keys for `auth = "api_key"` routes.
    pub keys: Arc<crate::auth::ApiKeys>,
    /// What `/metrics` renders.
    pub metrics: Arc<nimbus_metrics::Metrics>,
    /// Invocation records.
    pub history_store: Arc<dyn HistoryStore>,
    /// Live function output, for `logs?follow=true`.
    pub history: Arc<nimbus_engine::History>,
    /// What every `/v1` request must present.
    pub admin_token: crate::AdminToken,
    /// Tables and their change streams.
    pub tables: Arc<dyn nimbus_store::TableStore>,
    /// Set only by `nimbus up --test-clock`: the store's clock, moved by
    /// `POST /v1/test/clock` (the route exists only then).
    pub test_clock: Option<nimbus_store::ManualClock>,
    /// The store's clock (next fire times are counted from it).
    pub clock: Arc<dyn nimbus_store::Clock>,
    /// Where each schedule stands.
    pub schedule_store: Arc<dyn nimbus_store::ScheduleStore>,
    /// The whole store, for the readiness probe (`/readyz`) and the
    /// deployments kept in it.
    pub store: Arc<dyn nimbus_store::Store>,
    /// What puts new versions live; without it `/v1/deployments` only lists.
    pub deployer: Option<Arc<dyn deployments::Deployer>>,
    /// The keys the S3 and SQS endpoints accept.
    pub access_keys: Arc<nimbus_access::AccessKeys>,
}

/// What `/v1` sees of the deployment being served, swapped whole when
/// another goes live.
pub struct AppView {
    pub functions: Functions,
    /// The queues it declares and the internal queues its triggers use
    /// (`_async.F`, `_schedule.S`, `_object.F.ID`): none can be deleted
    /// while it is served.
    pub queues: std::collections::BTreeSet<String>,
    /// The app's object buckets.
    pub buckets: Arc<nimbus_bucket::Buckets>,
    /// The app's tables, for their key attributes.
    pub tables: std::collections::BTreeMap<String, nimbus_manifest::Table>,
    /// The app's schedules.
    pub schedules: Vec<nimbus_manifest::ScheduleTrigger>,
}

impl ApiState {
    /// The deployment being served now.
    pub fn app(&self) -> Arc<AppView> {
        self.app.get()
    }
}

/// The app's functions, by kind.
#[derive(Default)]
pub struct Functions {
    pub event: std::collections::HashMap<String, Arc<nimbus_engine::EventFunction>>,
    pub http: std::collections::BTreeSet<String>,
}

pub fn router(state: ApiState) -> Router {
    let test_clock = state.test_clock.is_some();
    Router::new()
        .route(
            "/v1/openapi.json",
            axum::routing::get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .merge(queues::router())
        .merge(buckets::router())
        .merge(functions::router())
        .merge(secrets::router())
        .merge(keys::router())
        .merge(access_keys::router())
        .merge(invocations::router())
        .merge(traces::router())
        .merge(usage::router())
        .merge(tables::router())
        .merge(schedules::router())
        .merge(cluster::router())
        .merge(deployments::router())
        .merge(if test_clock {
            test_clock_router()
        } else {
            Router::new()
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// `POST /v1/test/clock` `{"advance_ms": N}`: moves the test clock on and
/// answers `{"now_ms": ...}`. Mounted only under `--test-clock`.
fn test_clock_router() -> Router<ApiState> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Advance {
        advance_ms: u64,
    }
    async fn advance(
        axum::extract::State(state): axum::extract::State<ApiState>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Result<axum::Json<serde_json::Value>, ApiError> {
        use nimbus_store::Clock as _;
        let request: Advance = parse_json(&headers, &body)?;
        let clock = state
            .test_clock
            .as_ref()
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "the test clock is not enabled"))?;
        clock.advance_ms(request.advance_ms);
        Ok(axum::Json(serde_json::json!({ "now_ms": clock.now_ms() })))
    }
    Router::new().route("/v1/test/clock", axum::routing::post(advance))
}

/// Longest plain-text rejection rewrapped by `json_errors`; axum's are a line.
const MAX_REJECTION_BYTES: usize = 4096;

/// axum answers its own rejections (a path segment that is not UTF-8, a
/// query string of the wrong shape, a body over `MAX_REQUEST_BYTES`, a method
/// a route does not have) in plain text or with no body; every `/v1` error is
/// `{"error": ...}`, so those are rewrapped, keeping their status and headers
/// such as `Allow`.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request rejected")
            .to_owned()
    } else {
        text
    };
    let mut rewrapped = ApiError::new(status, message).into_response();
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    rewrapped.headers_mut().extend(parts.headers);
    rewrapped
}

/// An API failure: a status and a message for the caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::DeadLetterQueueInUse { .. } => StatusCode::CONFLICT,
            StoreError::QueueNotFound(_)
            | StoreError::MessageNotFound(_)
            | StoreError::KeyNotFound(_)
            | StoreError::TableNotFound(_)
            | StoreError::DeploymentNotFound(_) => StatusCode::NOT_FOUND,
            StoreError::MessageTooLarge { .. } | StoreError::ItemTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            StoreError::InvalidItem(_)
            | StoreError::InvalidMessage(_)
            | StoreError::InvalidComponent(_)
            | StoreError::InvalidDeployment(_) => StatusCode::BAD_REQUEST,
            // The client uploads it and tries again.
            StoreError::ComponentMissing { .. } => StatusCode::CONFLICT,
            StoreError::StaleReceipt | StoreError::Fenced { .. } => StatusCode::CONFLICT,
            StoreError::Closed
            | StoreError::Unavailable(_)
            | StoreError::UploadNotRegistered(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Backend(_) | StoreError::SchemaTooNew { .. } => {
                let detail = e.to_string();
                tracing::error!("store failure behind /v1: {detail}");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed; see the server log",
                );
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// The refusal to delete `name` (a queue, table or bucket) that the
/// version being served declares: deleting it would take data from under
/// the functions using it.
pub(crate) fn declared(kind: &str, name: &str) -> ApiError {
    let how = if name.starts_with('_') {
        "deploy a version without the triggers that use it first"
    } else {
        "remove it from the manifest and deploy first"
    };
    ApiError::new(
        StatusCode::CONFLICT,
        format!("{kind} `{name}` is declared by the running version; {how}"),
    )
}

/// The caller's W3C trace context, if it sent a valid `traceparent`: a
/// `/v1` write carries it on, so what the write sets off continues the
/// caller's trace.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(nimbus_trace::TraceContext::parse)
        .map(|c| c.to_traceparent())
}

/// The page size of a listing: `limit` if given, else `default`. One rule
/// for every `/v1` listing: a `limit` outside 1 to `max` is a 400 naming the
/// range, never clamped in silence.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "`limit` must be from 1 to {max}"
        ))),
    }
}

/// Parses a JSON body, saying where and what is wrong when it is not what
/// the endpoint expects. An empty body reads as `{}`. A body sent with a
/// content type that is not JSON is refused with 415 (a form post, `text/plain`
/// from `curl -d`); one sent with no content type is read as JSON.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    if !empty
        && let Some(value) = headers.get(header::CONTENT_TYPE)
        && !is_json(value)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "this endpoint takes `Content-Type: application/json`, not `{}`",
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(100)
                    .collect::<String>()
            ),
        ));
    }
    let body = if empty { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// `application/json` or a `+json` type, with any parameters.
fn is_json(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
            "application/merge-patch+json",
        ] {
            assert!(is_json(&ok.parse().unwrap()), "{ok}");
        }
        for not in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "text/json+x",
            "",
        ] {
            assert!(!is_json(&not.parse().unwrap()), "{not}");
        }
    }

    #[test]
    fn a_body_of_another_type_is_415_and_no_type_or_no_body_is_fine() {
        let typed = |t: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, t.parse().unwrap());
            headers
        };
        let refused = parse_json::<serde_json::Value>(&typed("text/plain"), b"{}").unwrap_err();
        assert_eq!(refused.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            refused.message.contains("text/plain"),
            "{}",
            refused.message
        );
        assert!(parse_json::<serde_json::Value>(&typed("application/json"), b"{}").is_ok());
        assert!(parse_json::<serde_json::Value>(&HeaderMap::new(), b"{}").is_ok());
        assert!(parse_json::<serde_json::Value>(&typed("text/plain"), b"  ").is_ok());
    }
}
