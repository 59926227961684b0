//! Concurrent writers share commits: durable throughput is not capped at one
//! fsync per request.

use nimbus_store::SystemClock;
use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_commits_and_all_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    store
        .declare_queues(&[QueueConfig {
            name: "q".into(),
            visibility_timeout_ms: 30_000,
            retention_ms: 3_600_000,
            delay_ms: 0,
            max_message_bytes: 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        }])
        .await
        .unwrap();
    let before = store.commit_stats();

    let senders: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let message = SendMessage {
                    body: format!("m{i}").into_bytes(),
                    ..SendMessage::default()
                };
                store.send("q", vec![message]).await.unwrap()
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }

    let after = store.commit_stats();
    let (commits, requests) = (
        after.commits - before.commits,
        after.requests - before.requests,
    );
    assert_eq!(requests, 400);
    assert!(
        commits < requests,
        "{commits} commits for {requests} sends: no grouping"
    );
    assert_eq!(store.stats("q").await.unwrap().visible, 400);
}
