//! The admin listener: liveness, readiness, and the versioned `/v1` API for
//! programs outside Nimbus (described by `/v1/openapi.json`).

use crate::api;
use crate::server::{Handler, RequestBody};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tower::ServiceExt as _;

/// How long `/readyz` waits for the store's answer: a store that does not
/// answer (a database host gone silent) makes it 503, never a hung probe.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `/healthz` (the process is up), `/readyz` (the app is loaded, the
/// store answers and requests are accepted; 503 while the store cannot be
/// reached and once shutdown has begun), and `/v1` and `/metrics`, which
/// need the admin token.
pub struct AdminApi {
    router: Router,
}

impl AdminApi {
    pub fn new(ready: Arc<AtomicBool>, api: api::ApiState) -> Self {
        let admin_token = api.admin_token.clone();
        let console = crate::console::ConsoleState {
            token: admin_token.clone(),
            sessions: Arc::new(crate::console::Sessions::default()),
        };
        let readiness = Readiness {
            ready,
            store: api.store.clone(),
        };
        let metrics = Router::new()
            .route("/metrics", axum::routing::get(crate::metrics::scrape))
            .with_state(api.clone());
        let v1 = api::router(api)
            .merge(metrics)
            .layer(axum::middleware::from_fn_with_state(
                console.clone(),
                require_token,
            ));
        let router = Router::new()
            .route(
                "/healthz",
                axum::routing::get(|| async { status(StatusCode::OK, "ok") }),
            )
            .route("/readyz", axum::routing::get(readyz).with_state(readiness))
            .merge(v1)
            .merge(crate::console::router(console))
            .fallback(|uri: Uri| async move {
                api::ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no admin endpoint at {}", uri.path()),
                )
            });
        AdminApi { router }
    }
}

/// The secret every `/v1` request must carry as `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    pub fn new(token: &str) -> Self {
        AdminToken(token.into())
    }

    /// Whether `given` is the token (compared in constant time).
    pub(crate) fn matches(&self, given: &str) -> bool {
        crate::auth::constant_time_eq(given.as_bytes(), self.0.as_bytes())
    }
}

/// Lets a request through with the admin token, or from the console with a
/// live session's cookie; a console request that changes anything must also
/// carry the session's CSRF token (a cross-site form cannot). Every answer is
/// hardened for a browser that holds the console's cookie: no answer may run
/// a script on the admin origin (an object uploaded as HTML included), and an
/// object is a download, never a page.
async fn require_token(
    State(console): State<crate::console::ConsoleState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let object_read = request.method() == http::Method::GET
        && request.uri().path().starts_with("/v1/buckets/")
        && request.uri().path().contains("/objects/");
    let mut response = match admit(&console, &request) {
        Ok(()) => next.run(request).await,
        Err(refused) => *refused,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if object_read {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
    response
}

/// Whether `request` may reach `/v1`, or the refusal.
fn admit(
    console: &crate::console::ConsoleState,
    request: &axum::extract::Request,
) -> Result<(), Box<Response>> {
    if request.headers().get(header::AUTHORIZATION).is_none()
        && let Some(session) = crate::console::live_session(request.headers(), &console.sessions)
    {
        let safe = matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        let csrf = request
            .headers()
            .get(crate::console::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if safe || console.sessions.check_csrf(&session, csrf) {
            return Ok(());
        }
        return Err(Box::new(
            api::ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "a console request that changes something needs the session's `{}` header",
                    crate::console::CSRF_HEADER
                ),
            )
            .into_response(),
        ));
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let problem = match presented {
        None => {
            "missing admin token: send `Authorization: Bearer TOKEN` (the CLI: --admin-token or NIMBUS_ADMIN_TOKEN; `nimbus up` stores a generated token in DATA_DIR/admin-token)"
        }
        Some(given) if console.token.matches(given) => return Ok(()),
        Some(_) => "wrong admin token",
    };
    let mut response = api::ApiError::new(StatusCode::UNAUTHORIZED, problem).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"nimbus-admin\""),
    );
    Err(Box::new(response))
}

/// What `/readyz` looks at.
#[derive(Clone)]
struct Readiness {
    /// False once shutdown has begun.
    ready: Arc<AtomicBool>,
    store: Arc<dyn nimbus_store::Store>,
}

/// 200 when the server takes requests and its store answers a probe within
/// [`STORE_PROBE_TIMEOUT`]; otherwise 503 saying why. The body names no
/// backend detail (this route needs no token); the log has it.
async fn readyz(State(readiness): State<Readiness>) -> Response {
    if !readiness.ready.load(Ordering::SeqCst) {
        return status(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let problem = match tokio::time::timeout(STORE_PROBE_TIMEOUT, readiness.store.ping()).await {
        Ok(Ok(())) => return status(StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!("readiness: the store failed its probe: {e}");
            match e {
                nimbus_store::StoreError::Unavailable(_) | nimbus_store::StoreError::Closed => {
                    "the store is unavailable".to_owned()
                }
                _ => "the store failed its probe; see the server log".to_owned(),
            }
        }
        Err(_) => {
            tracing::warn!(
                "readiness: the store did not answer its probe within {STORE_PROBE_TIMEOUT:?}"
            );
            format!(
                "the store did not answer within {} s",
                STORE_PROBE_TIMEOUT.as_secs()
            )
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "status": "store unavailable", "error": problem })),
    )
        .into_response()
}

fn status(code: StatusCode, status: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "status": status }))).into_response()
}

impl Handler for AdminApi {
    type Body = Body;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<RequestBody>,
        _local: SocketAddr,
    ) -> Response {
        let request = request.map(Body::new);
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
