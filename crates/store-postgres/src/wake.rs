//! Wake-ups across processes. After each commit the store wakes this
//! process's waiters at once and hands the changed names to the notifier, a
//! task that sends them to other processes with `pg_notify`, outside every
//! write transaction (a NOTIFY inside each write would serialise commits on
//! the notification queue's lock) and coalesced: at most one notification
//! every `NOTIFY_INTERVAL`, carrying every name changed since the last. The listener holds one
//! connection that `LISTEN`s and wakes local waiters for other processes'
//! names; after it (re)connects it wakes every waiter, since notifications
//! sent while it was away are lost. The workers' own polling stays as the
//! safety net.

use crate::tls::MakeRustlsConnect;
use deadpool_postgres::Pool;
use nimbus_store::QueueSignals;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// The notification channel every Nimbus process listens on.
const CHANNEL: &str = "nimbus_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// Names waiting to be sent before new ones are dropped (polling still
/// finds their work).
const MAX_PENDING: usize = 10_000;
/// Least time between two notifications: each is a small transaction that
/// commits (an fsync) and takes the notification queue's lock, so at most
/// this often; names changed meanwhile wait and go out together.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);
/// Wait before the listener reconnects.
const RECONNECT: Duration = Duration::from_secs(1);

/// Names waiting for the notifier.
#[derive(Default)]
pub(crate) struct Pending {
    names: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl Pending {
    pub(crate) fn add(&self, names: impl IntoIterator<Item = String>) {
        let mut pending = self.names.lock().unwrap();
        for name in names {
            if pending.len() < MAX_PENDING {
                pending.insert(name);
            }
        }
        drop(pending);
        self.wake.notify_one();
    }
}

/// The notifier and listener tasks, stopped when the store is dropped.
pub(crate) struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts both tasks; the receiver answers once the listener first listens.
/// The listener connects as the pool does (`tls`: the same TLS choice).
pub(crate) fn start(
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    pending: Arc<Pending>,
    signals: QueueSignals,
) -> (Tasks, oneshot::Receiver<()>) {
    // Lets the listener skip what this process sent itself.
    let origin = uuid::Uuid::new_v4().simple().to_string();
    let (listening, first_listen) = oneshot::channel();
    let tasks = Tasks(vec![
        tokio::spawn(notify(pool, pending, origin.clone())),
        tokio::spawn(listen(config, tls, signals, origin, listening)),
    ]);
    (tasks, first_listen)
}

async fn notify(pool: Pool, pending: Arc<Pending>, origin: String) {
    let mut pace = tokio::time::interval(NOTIFY_INTERVAL);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        pending.wake.notified().await;
        pace.tick().await;
        let names = std::mem::take(&mut *pending.names.lock().unwrap());
        if names.is_empty() {
            continue;
        }
        let client = match pool.get().await {
            Ok(client) => client,
            Err(e) => {
                tracing::debug!("cannot tell other processes of changes: {e}");
                continue;
            }
        };
        for payload in payloads(&origin, &names) {
            if let Err(e) = client
                .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
            {
                tracing::debug!("cannot tell other processes of changes: {e}");
                break;
            }
        }
    }
}

/// `origin` then one name per line, split to fit PostgreSQL's payload limit.
fn payloads(origin: &str, names: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = origin.to_owned();
    for name in names {
        if name.len() + origin.len() + 1 > MAX_PAYLOAD {
            continue;
        }
        if current.len() + 1 + name.len() > MAX_PAYLOAD {
            out.push(std::mem::replace(&mut current, origin.to_owned()));
        }
        current.push('\n');
        current.push_str(name);
    }
    if current.len() > origin.len() {
        out.push(current);
    }
    out
}

async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    signals: QueueSignals,
    origin: String,
    listening: oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let forward = signals.clone();
                let own = origin.clone();
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                let mut lines = n.payload().lines();
                                if lines.next() == Some(own.as_str()) {
                                    continue;
                                }
                                for name in lines {
                                    forward.notify(name);
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!("the change listener's connection failed: {e}");
                                break;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        if let Some(first) = listening.take() {
                            let _ = first.send(());
                        }
                        // Whatever was sent while not listening is lost.
                        signals.notify_all();
                        let _ = driver.await;
                    }
                    Err(e) => {
                        tracing::debug!("cannot listen for changes: {e}");
                        driver.abort();
                    }
                }
                tracing::info!("the change listener lost its connection; reconnecting");
            }
            Err(e) => tracing::debug!("the change listener cannot connect: {e}"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_origin_and_split_before_the_limit() {
        let names: BTreeSet<String> = (0..2_000).map(|i| format!("queue-{i:05}")).collect();
        let payloads = payloads("me", &names);
        assert!(payloads.len() > 1);
        let mut seen = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8_000);
            let mut lines = payload.lines();
            assert_eq!(lines.next(), Some("me"));
            seen.extend(lines.map(str::to_owned));
        }
        assert_eq!(seen, names.into_iter().collect::<Vec<_>>());
    }
}
