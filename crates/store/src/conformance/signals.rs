//! Wake-ups behind the store: a commit wakes the waiters of what it changed
//! (a queue sent to or moved into, a streamed table written), without the
//! caller notifying anyone.

use crate::queue::{QueueConfig, SendMessage};
use crate::table::{ItemKey, PutCondition, StreamView, TableConfig, stream_signal};
use crate::{ManualClock, Store};
use std::time::Duration;

const START_MS: u64 = 1_700_000_000_000;
/// A bound on waiting, not a delay: the wait ends at the wake-up.
const PATIENCE: Duration = Duration::from_secs(10);

fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        visibility_timeout_ms: 30_000,
        retention_ms: 3_600_000,
        delay_ms: 0,
        max_message_bytes: 1024,
        dedup_window_ms: 0,
        max_receive_count: Some(1),
        dead_letter_queue: Some(format!("{name}-dlq")),
    }
}

/// Runs `act` and waits for `name` to be signalled on `store`.
async fn signalled<S: Store, F: Future>(store: &S, name: &str, act: F) {
    let signal = store.signals().get(name);
    let woken = signal.notified();
    tokio::pin!(woken);
    woken.as_mut().enable();
    act.await;
    tokio::time::timeout(PATIENCE, woken)
        .await
        .unwrap_or_else(|_| panic!("`{name}` was not signalled after the commit"));
}

pub async fn a_committed_send_wakes_the_waiters_of_its_queue<S: Store, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store
        .declare_queues(&[queue("q"), queue("q-dlq")])
        .await
        .unwrap();
    signalled(&store, "q", async {
        store.send("q", vec![SendMessage::default()]).await.unwrap();
    })
    .await;
}

pub async fn moving_messages_wakes_the_queues_they_moved_into<S: Store, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store
        .declare_queues(&[queue("q"), queue("q-dlq")])
        .await
        .unwrap();
    store.send("q", vec![SendMessage::default()]).await.unwrap();
    let leased = store.receive("q", 1, Some(1_000)).await.unwrap();
    assert_eq!(leased.len(), 1);
    clock.advance_ms(2_000);
    // Its one receive is used up: the next receive dead-letters it.
    signalled(&store, "q-dlq", async {
        assert!(store.receive("q", 1, None).await.unwrap().is_empty());
    })
    .await;
    signalled(&store, "q", async {
        assert_eq!(store.redrive("q-dlq", None, 10).await.unwrap(), 1);
    })
    .await;
}

pub async fn a_committed_write_wakes_the_stream_of_its_table<S: Store, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store
        .declare_tables(&[TableConfig {
            name: "t".to_owned(),
            partition_key: "id".to_owned(),
            sort_key: None,
            stream: Some(StreamView::NewImage),
            stream_retention_ms: 3_600_000,
            max_item_bytes: 1024,
        }])
        .await
        .unwrap();
    let key = ItemKey {
        partition: "a".to_owned(),
        sort: None,
    };
    signalled(&store, &stream_signal("t"), async {
        store
            .put_item("t", key.clone(), b"{}".to_vec(), PutCondition::Always, None)
            .await
            .unwrap()
            .unwrap();
    })
    .await;
    signalled(&store, &stream_signal("t"), async {
        store
            .delete_item("t", &key, None, None)
            .await
            .unwrap()
            .unwrap();
    })
    .await;
}
