//! The admin listener: liveness and readiness for supervisors and load
//! balancers. The versioned `/v1` API will live here too.

use crate::response;
use crate::server::Handler;
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use nimbus_engine::{ResponseBody, full_body};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Answers `/healthz` (the process is up) and `/readyz` (the app is loaded
/// and accepting requests; 503 once shutdown has begun).
pub struct AdminApi {
    ready: Arc<AtomicBool>,
}

impl AdminApi {
    pub fn new(ready: Arc<AtomicBool>) -> Self {
        AdminApi { ready }
    }
}

impl Handler for AdminApi {
    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<Incoming>,
        _local: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        match request.uri().path() {
            "/healthz" => status(StatusCode::OK, "ok"),
            "/readyz" if self.ready.load(Ordering::SeqCst) => status(StatusCode::OK, "ready"),
            "/readyz" => status(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
            path => response::error(
                StatusCode::NOT_FOUND,
                &format!("no admin endpoint at {path}"),
                None,
            ),
        }
    }
}

fn status(code: StatusCode, status: &str) -> hyper::Response<ResponseBody> {
    let mut response = hyper::Response::new(full_body(format!("{{\"status\":\"{status}\"}}\n")));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
