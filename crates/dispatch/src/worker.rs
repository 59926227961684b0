//! The loop every delivery worker runs, whatever its source: take work from
//! the store; handle it if there is some; otherwise wait for a send signal,
//! the idle poll or shutdown. A store failure is logged and retried.

use nimbus_store::StoreError;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often an idle worker looks for work that appeared without a signal in
/// this process (delays ending, leases expiring, other writers).
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a worker waits after the store fails before trying again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true; `what` names the worker in logs.
pub(crate) async fn run<T, F, H>(
    what: &str,
    signal: &Notify,
    mut shutdown: watch::Receiver<bool>,
    mut fetch: impl FnMut() -> F,
    mut handle: impl FnMut(Vec<T>) -> H,
) where
    F: Future<Output = Result<Vec<T>, StoreError>>,
    H: Future<Output = ()>,
{
    while !*shutdown.borrow() {
        // Subscribed before looking, so a send in between is not missed.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match fetch().await {
            Ok(work) if !work.is_empty() => handle(work).await,
            Ok(_) => tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            },
            Err(e) => {
                tracing::error!("{what} cannot read its queue: {e}");
                tokio::select! {
                    () = tokio::time::sleep(STORE_RETRY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
