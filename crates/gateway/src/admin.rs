//! The admin listener: liveness, readiness, and the versioned `/v1` API for
//! programs outside Nimbus (described by `/v1/openapi.json`).

use crate::api;
use crate::server::Handler;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tower::ServiceExt as _;

/// Serves `/healthz` (the process is up), `/readyz` (the app is loaded and
/// accepting requests; 503 once shutdown has begun) and `/v1`.
pub struct AdminApi {
    router: Router,
}

impl AdminApi {
    pub fn new(ready: Arc<AtomicBool>, api: api::ApiState) -> Self {
        let router = Router::new()
            .route(
                "/healthz",
                axum::routing::get(|| async { status(StatusCode::OK, "ok") }),
            )
            .route("/readyz", axum::routing::get(readyz).with_state(ready))
            .merge(api::router(api))
            .fallback(|uri: Uri| async move {
                api::ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no admin endpoint at {}", uri.path()),
                )
            });
        AdminApi { router }
    }
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> Response {
    if ready.load(Ordering::SeqCst) {
        status(StatusCode::OK, "ready")
    } else {
        status(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    }
}

fn status(code: StatusCode, status: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "status": status }))).into_response()
}

impl Handler for AdminApi {
    type Body = Body;

    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
        _local: SocketAddr,
    ) -> Response {
        let request = request.map(Body::new);
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}
