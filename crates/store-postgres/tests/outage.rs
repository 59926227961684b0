//! Connections the server ends (an administrator's `pg_terminate_backend`,
//! a restart) are outages, not request failures: a request caught by one
//! fails as `Unavailable` (a 503, never a 500), and the pool replaces the
//! connection without the store being reopened.

use nimbus_store::StoreError;
use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
use nimbus_store_postgres::{PgOptions, PgStore};

#[tokio::test]
async fn ended_connections_fail_requests_as_unavailable_and_are_replaced() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let name = format!("nimbus_{}", fresh.schema);
    let options = PgOptions {
        url: format!("{}&application_name={name}", fresh.url),
        relaxed_durability: false,
        pool_size: 4,
    };
    let store = PgStore::connect(&options, None).await.unwrap();
    store
        .declare_queues(&[QueueConfig {
            name: "jobs".into(),
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
    store
        .send("jobs", vec![SendMessage::default()])
        .await
        .unwrap();

    for round in 0..3 {
        server.sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
        ));
        // A request may meet a connection whose end it has not yet seen:
        // then it is `Unavailable`, and the pool replaces that connection.
        let mut unavailable = 0;
        let stats = loop {
            match store.stats("jobs").await {
                Ok(stats) => break stats,
                Err(StoreError::Unavailable(_)) if unavailable < 8 => unavailable += 1,
                Err(e) => panic!("round {round}: an ended connection gave {e:?}"),
            }
        };
        assert_eq!(stats.visible, 1, "round {round}");
    }
    // The listener reconnects too: nothing here depends on it, but the
    // store keeps working with it gone and back.
    store
        .send("jobs", vec![SendMessage::default()])
        .await
        .unwrap();
    assert_eq!(store.stats("jobs").await.unwrap().visible, 2);
}
