//! The public listener: routes each request to its function and turns every
//! outcome into a status a client can rely on.
//!
//! A function sees the request as sent, plus these headers (any a client
//! sent with the same names are removed first):
//! `x-nimbus-invocation-id`, `x-nimbus-route` (the matched pattern),
//! `x-nimbus-param-NAME` for each `{NAME}` segment (as written in the URL,
//! percent-encoding kept) and `x-nimbus-path-rest` for what `...` matched.
//! Paths with `.`/`..` or empty segments are refused (400) before routing.

use crate::auth::Authenticator;
use crate::response::{self, INVOCATION_ID_HEADER};
use crate::router::{Routed, Router};
use crate::server::{Handler, RequestBody};
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use nimbus_engine::{HttpFunction, InvokeError, ResponseBody};
use nimbus_trace::{SpanKind, TraceContext, Tracer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Seconds a client is told to wait after a 429.
const RETRY_AFTER_S: &str = "1";
const NIMBUS_HEADER_PREFIX: &str = "x-nimbus-";

/// Routes, who may call them, and the functions they invoke.
pub struct PublicGateway {
    router: Router,
    functions: HashMap<String, Arc<HttpFunction>>,
    auth: Authenticator,
    body_read_timeout: Duration,
    metrics: Arc<nimbus_metrics::Metrics>,
    tracer: Tracer,
}

impl PublicGateway {
    pub fn new(
        app: &nimbus_manifest::App,
        functions: HashMap<String, Arc<HttpFunction>>,
        auth: Authenticator,
        body_read_timeout: Duration,
        metrics: Arc<nimbus_metrics::Metrics>,
        tracer: Tracer,
    ) -> Self {
        PublicGateway {
            router: Router::new(&app.http_triggers),
            functions,
            auth,
            body_read_timeout,
            metrics,
            tracer,
        }
    }
}

/// Methods counted by name; any other is counted as `OTHER`, so a client
/// cannot add label values.
const COUNTED_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The routes of the deployment being served: each request is answered by
/// the gateway current when it arrived.
impl Handler for crate::Live<PublicGateway> {
    type Body = ResponseBody;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        local: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        self.get().handle(request, local).await
    }
}

impl Handler for PublicGateway {
    type Body = ResponseBody;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        local: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        let started = std::time::Instant::now();
        let method = request.method().as_str();
        let method = COUNTED_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("OTHER");
        // A request that carries W3C trace context continues its trace.
        let parent = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let mut span = self.tracer.start(method, SpanKind::Server, parent.as_ref());
        let mut route = None;
        let response = self
            .respond(request, local, &mut route, &span.context)
            .await;
        let route = route.unwrap_or_default();
        if !route.is_empty() {
            span.rename(format!("{method} {route}"));
        }
        span.set("http.request.method", method);
        span.set("http.route", route.as_str());
        span.set("http.response.status_code", response.status().as_str());
        if response.status().is_server_error() {
            span.fail(response.status().to_string());
        }
        span.end();
        let metrics = &self.metrics;
        metrics
            .http_requests
            .with(&[&route, method, response.status().as_str()])
            .inc();
        metrics
            .http_request_duration
            .with(&[&route])
            .observe(started.elapsed().as_secs_f64());
        response
    }
}

impl PublicGateway {
    /// Answers one request, setting `matched_route` to the route pattern it
    /// matched; the invocation is traced under `trace`.
    async fn respond(
        &self,
        request: hyper::Request<RequestBody>,
        local: SocketAddr,
        matched_route: &mut Option<String>,
        trace: &TraceContext,
    ) -> hyper::Response<ResponseBody> {
        let path = request.uri().path().to_owned();
        if let Err(problem) = check_path(&path) {
            return response::error(StatusCode::BAD_REQUEST, problem, None);
        }
        if request
            .headers()
            .get(header::HOST)
            .is_some_and(|host| host.to_str().is_err())
        {
            return response::error(
                StatusCode::BAD_REQUEST,
                "the Host header is not valid",
                None,
            );
        }
        let (trigger, matched) = match self.router.route(request.method(), &path) {
            Routed::Found { trigger, matched } => {
                *matched_route = Some(trigger.route.as_str().to_owned());
                (trigger, matched)
            }
            Routed::MethodNotAllowed { allow } => {
                let mut response = response::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("method {} is not allowed on {path}", request.method()),
                    None,
                );
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return response;
            }
            Routed::NotFound => {
                return response::error(
                    StatusCode::NOT_FOUND,
                    &format!("no route matches {path}"),
                    None,
                );
            }
        };
        let Some(function) = self.functions.get(&trigger.function) else {
            tracing::error!(function = %trigger.function, "route points at a function that was not loaded");
            return response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "function is not loaded",
                None,
            );
        };

        let (mut parts, body) = request.into_parts();
        // Client headers in Nimbus's namespace are dropped before anything
        // (authentication included) sets its own.
        let spoofed: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with(NIMBUS_HEADER_PREFIX))
            .cloned()
            .collect();
        for name in spoofed {
            parts.headers.remove(name);
        }
        // The console's session (the browser sends it to every port of
        // this host) is the admin's, never the function's.
        crate::console::strip_session_cookie(&mut parts.headers);
        // Before the body is read: an unauthenticated caller costs no upload.
        if let Err(denied) = self.auth.admit(&trigger.auth, &mut parts.headers).await {
            return denied.into_response();
        }
        let limit = trigger.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return too_large(limit);
        }
        // Bodies are read in full (within the limit) before the function
        // starts, so an oversize upload never reaches, or half-reaches, it.
        let read = Limited::new(body, limit as usize).collect();
        let body = match tokio::time::timeout(self.body_read_timeout, read).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(limit),
            Ok(Err(e)) => {
                return response::error(
                    StatusCode::BAD_REQUEST,
                    &format!("failed to read the request body: {e}"),
                    None,
                );
            }
            Err(_elapsed) => {
                return response::error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} ms",
                        self.body_read_timeout.as_millis()
                    ),
                    None,
                );
            }
        };

        let invocation_id = uuid::Uuid::now_v7().to_string();
        let headers = &mut parts.headers;
        insert(headers, INVOCATION_ID_HEADER, &invocation_id);
        insert(headers, "x-nimbus-route", trigger.route.as_str());
        for (name, value) in &matched.params {
            insert(headers, &format!("x-nimbus-param-{name}"), value);
        }
        if let Some(rest) = matched.rest {
            insert(headers, "x-nimbus-path-rest", rest);
        }
        if !headers.contains_key(header::HOST) && parts.uri.authority().is_none() {
            insert(headers, header::HOST.as_str(), &local.to_string());
        }
        let request = hyper::Request::from_parts(parts, Full::new(body));

        match function.handle(request, &invocation_id, Some(trace)).await {
            Ok(mut response) => {
                insert(response.headers_mut(), INVOCATION_ID_HEADER, &invocation_id);
                response
            }
            Err(InvokeError::Busy) => {
                let mut response = response::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "function `{}` is at its max_concurrency; retry later",
                        function.name()
                    ),
                    // A throttled record was written under this id.
                    Some(&invocation_id),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
                response
            }
            Err(InvokeError::DeadlineExceeded { timeout_ms }) => response::error(
                StatusCode::GATEWAY_TIMEOUT,
                &format!("function did not respond within its {timeout_ms} ms deadline"),
                Some(&invocation_id),
            ),
            // The cause is in the log under the invocation id; the client
            // learns only that the function failed.
            Err(InvokeError::Failed(_)) => response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "function failed; the server log has details under this invocation id",
                Some(&invocation_id),
            ),
        }
    }
}

/// Rejects paths a function could be fooled by: `.` and `..` segments (also
/// percent-encoded) and empty segments (`//`).
fn check_path(path: &str) -> Result<(), &'static str> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        if decoded == "." || decoded == ".." {
            return Err("the path contains a `.` or `..` segment");
        }
        if segment.is_empty() && i + 1 < segments.len() {
            return Err("the path contains an empty segment (`//`)");
        }
    }
    Ok(())
}

fn too_large(limit: u64) -> hyper::Response<ResponseBody> {
    response::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than this route's limit of {limit} bytes"),
        None,
    )
}

fn insert(headers: &mut http::HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}
