//! The loop every delivery worker runs, whatever its source: take work from
//! the store; handle it if there is some; otherwise wait for a send signal,
//! the idle poll or shutdown. A store failure is logged and retried; a run
//! of failures (an outage) is logged once, then quietly, then its end.

use nimbus_store::StoreError;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often an idle worker looks for work that appeared without a signal in
/// this process (delays ending, leases expiring, other writers).
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a worker waits after the store fails before trying again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);

/// How many failures in a row pass between two reminders that a worker
/// still cannot reach the store (at `STORE_RETRY`, a minute).
const REMIND_EVERY: u64 = 60;

/// A worker's run of store failures: the first is an error line, later ones
/// are debug lines with a warning every `REMIND_EVERY`, and the first
/// success after them says so. Every idle worker polls, so without this an
/// outage of the store writes a line per worker per second.
#[derive(Debug, Default)]
pub(crate) struct Failures(u64);

impl Failures {
    /// `what` (the worker) failed at `doing` with `e`; returns the level
    /// it logged at.
    pub(crate) fn failed(&mut self, what: &str, doing: &str, e: &StoreError) -> tracing::Level {
        self.0 += 1;
        match self.0 {
            1 => {
                tracing::error!("{what} {doing}: {e}");
                tracing::Level::ERROR
            }
            n if n % REMIND_EVERY == 0 => {
                tracing::warn!("{what} still {doing} after {n} attempts: {e}");
                tracing::Level::WARN
            }
            _ => {
                tracing::debug!("{what} {doing}: {e}");
                tracing::Level::DEBUG
            }
        }
    }

    /// The store answered `what` again.
    pub(crate) fn succeeded(&mut self, what: &str) {
        if self.0 > 0 {
            tracing::info!(
                "{what} reaches the store again after {} failed attempts",
                self.0
            );
            self.0 = 0;
        }
    }
}

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
    let mut failures = Failures::default();
    while !*shutdown.borrow() {
        // Subscribed before looking, so a send in between is not missed.
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let fetched = fetch().await;
        if fetched.is_ok() {
            failures.succeeded(what);
        }
        match fetched {
            Ok(work) if !work.is_empty() => handle(work).await,
            Ok(_) => tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.changed() => {}
            },
            Err(e) => {
                failures.failed(what, "cannot read its queue", &e);
                tokio::select! {
                    () = tokio::time::sleep(STORE_RETRY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn an_outage_is_one_error_then_a_warning_a_minute_and_starts_over_after_a_success() {
        let mut failures = Failures::default();
        let down = StoreError::Unavailable("test".into());
        let levels: Vec<Level> = (1..=120)
            .map(|_| failures.failed("w", "cannot read its queue", &down))
            .collect();
        assert_eq!(levels[0], Level::ERROR);
        assert_eq!(levels[59], Level::WARN);
        assert_eq!(levels[119], Level::WARN);
        let quiet = levels.iter().filter(|l| **l == Level::DEBUG).count();
        assert_eq!(quiet, 117);
        failures.succeeded("w");
        assert_eq!(
            failures.failed("w", "cannot read its queue", &down),
            Level::ERROR
        );
    }
}
