//! Nimbus's listeners: the public gateway (routes -> functions) and the admin
//! listener, both served by one bounded, gracefully-stopping server loop.

mod admin;
pub mod api;
pub mod auth;
pub mod console;
mod live;
mod metrics;
mod public;
mod response;
mod router;
mod server;

pub use admin::{AdminApi, AdminToken};
pub use live::Live;
pub use public::PublicGateway;
pub use response::INVOCATION_ID_HEADER;
pub use router::{Routed, Router};
pub use server::{Drain, Endpoint, Handler, RequestBody, ServerLimits, serve};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Admin requests are short; the admin listener waits at most this long
/// after the public one has drained.
const ADMIN_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Runs both listeners until `shutdown` resolves; then readiness turns to
/// 503, both stop accepting, and in-flight requests get `limits.shutdown_grace`
/// to finish. Returns how the public listener drained.
pub async fn run(
    public: TcpListener,
    admin: TcpListener,
    gateway: Arc<Live<PublicGateway>>,
    api: api::ApiState,
    endpoints: Vec<Endpoint>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Drain {
    let ready = Arc::new(AtomicBool::new(true));
    let admin_api = Arc::new(AdminApi::new(ready.clone(), api));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    // The endpoints stop accepting with the public listener and drain
    // alongside it.
    let endpoints: Vec<_> = endpoints
        .into_iter()
        .map(|endpoint| {
            let mut stop_rx = stop_tx.subscribe();
            endpoint.run(
                limits,
                Box::pin(async move {
                    let _ = stop_rx.wait_for(|stop| *stop).await;
                }),
            )
        })
        .collect();
    let endpoints = join_all(endpoints);
    let (public_done_tx, public_done_rx) = tokio::sync::oneshot::channel::<()>();
    let public_task = async move {
        let stopped = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        let drain = serve(public, gateway, limits, stopped).await;
        let _ = public_done_tx.send(());
        drain
    };
    // The admin listener outlives the public one, so `/readyz` can say 503
    // while in-flight requests drain.
    let admin_limits = ServerLimits {
        shutdown_grace: limits.shutdown_grace.min(ADMIN_SHUTDOWN_GRACE),
        ..limits
    };
    let admin_task = serve(admin, admin_api, admin_limits, async move {
        let _ = public_done_rx.await;
    });
    let signal = async move {
        shutdown.await;
        ready.store(false, Ordering::SeqCst);
        tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        let _ = stop_tx.send(true);
    };
    let (drain, _, (), _) = tokio::join!(public_task, admin_task, signal, endpoints);
    drain
}

/// Awaits every future (the endpoints' drains), each in its own task.
async fn join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(output) = task.await {
            outputs.push(output);
        }
    }
    outputs
}
