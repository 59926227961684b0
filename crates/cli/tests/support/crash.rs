//! The shape the crash tests share: writers load a running server until a
//! round's worth of writes is acknowledged, then the server is killed with
//! SIGKILL while writes and deliveries are in flight.

use super::{Nimbus, TestApp, until};
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Writers loading the server in each round.
const WRITERS: usize = 4;

/// A number from the environment (`NIMBUS_CRASH_ROUNDS`,
/// `NIMBUS_CRASH_ACKS_PER_ROUND`), so the same test can run longer by hand.
pub fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The store `nimbus up` arguments choose, for reports.
pub fn store_name(store_args: &[&str]) -> &'static str {
    match store_args.iter().find(|a| a.starts_with("postgres")) {
        Some(_) => "postgres",
        None => "sqlite",
    }
}

/// What the writers of every round share: the number of the next write and
/// what every acknowledged write returned.
pub struct Writes<T> {
    next: Arc<AtomicUsize>,
    acknowledged: Arc<Mutex<HashSet<T>>>,
}

impl<T: Clone + Eq + Hash + Send + 'static> Writes<T> {
    pub fn new() -> Self {
        Writes {
            next: Arc::new(AtomicUsize::new(0)),
            acknowledged: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Every write acknowledged so far.
    pub fn acknowledged(&self) -> HashSet<T> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Starts `app` with `args`, and [`WRITERS`] writers that each call
    /// `write(admin_base_url, n)` with a fresh `n` (counting on across
    /// rounds) until `acks` more writes have been acknowledged (`write`
    /// answered `Some`); then kills the server with SIGKILL mid-load. A
    /// writer stops at its first unacknowledged write. Returns the killed
    /// server, for its log.
    pub async fn kill_under_load<F, Fut>(
        &self,
        app: &TestApp,
        args: &[&str],
        acks: usize,
        write: F,
    ) -> Nimbus
    where
        F: Fn(String, usize) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        let mut nimbus = app.start_with(args).await;
        let stop = Arc::new(AtomicBool::new(false));
        let round_start = self.acknowledged.lock().unwrap().len();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (admin, next, acknowledged, stop, write) = (
                    nimbus.admin.clone(),
                    self.next.clone(),
                    self.acknowledged.clone(),
                    stop.clone(),
                    write.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        match write(admin.clone(), n).await {
                            Some(ack) => {
                                acknowledged.lock().unwrap().insert(ack);
                            }
                            None => break,
                        }
                    }
                })
            })
            .collect();
        until("for this round's acknowledgements", || async {
            (self.acknowledged.lock().unwrap().len() >= round_start + acks).then_some(())
        })
        .await;
        // Killed mid-stream: writes and batches are in flight.
        nimbus.child.start_kill().unwrap();
        nimbus.child.wait().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.unwrap();
        }
        nimbus
    }
}
