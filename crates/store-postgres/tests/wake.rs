//! Wake-ups between processes: a commit through one store wakes waiters of
//! another store on the same database (through LISTEN/NOTIFY), not only its
//! own, and so does an activation, for the deployment signal.

use nimbus_store::Store;
use nimbus_store::deployment::{DEPLOYMENT_SIGNAL, DeploymentStore, NewDeployment};
use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
use nimbus_store::table::{
    ItemKey, PutCondition, StreamView, TableConfig, TableStore, stream_signal,
};
use nimbus_store_postgres::{PgOptions, PgStore};
use std::time::Duration;

/// A bound on waiting, not a delay: the wait ends at the wake-up.
const PATIENCE: Duration = Duration::from_secs(10);

async fn open(url: &str) -> PgStore {
    let options = PgOptions {
        url: url.to_owned(),
        relaxed_durability: false,
        pool_size: 4,
    };
    PgStore::connect(&options, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_through_one_store_wakes_waiters_of_another() {
    let url = nimbus_test_postgres::server().fresh_url();
    let (here, elsewhere) = (open(&url).await, open(&url).await);
    here.declare_queues(&[QueueConfig {
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
    here.declare_tables(&[TableConfig {
        name: "orders".into(),
        partition_key: "id".into(),
        sort_key: None,
        stream: Some(StreamView::KeysOnly),
        stream_retention_ms: 3_600_000,
        max_item_bytes: 1024,
    }])
    .await
    .unwrap();

    for round in 0..3 {
        let queue = elsewhere.signals().get("jobs");
        let woken = queue.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        here.send("jobs", vec![SendMessage::default()])
            .await
            .unwrap();
        tokio::time::timeout(PATIENCE, woken)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the other store was not woken"));

        let stream = elsewhere.signals().get(&stream_signal("orders"));
        let woken = stream.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let key = ItemKey {
            partition: format!("order-{round}"),
            sort: None,
        };
        here.put_item("orders", key, b"{}".to_vec(), PutCondition::Always, None)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(PATIENCE, woken)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the other store's stream was not woken"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_through_one_store_wakes_deployment_waiters_of_another() {
    let url = nimbus_test_postgres::server().fresh_url();
    let (here, elsewhere) = (open(&url).await, open(&url).await);
    for digest in ["v1", "v2"] {
        here.create_deployment(NewDeployment {
            manifest: String::new(),
            components: Default::default(),
            digest: digest.to_owned(),
        })
        .await
        .unwrap();
    }
    for id in [1, 2, 1] {
        let signal = elsewhere.signals().get(DEPLOYMENT_SIGNAL);
        let woken = signal.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        here.activate(id).await.unwrap();
        tokio::time::timeout(PATIENCE, woken)
            .await
            .unwrap_or_else(|_| panic!("activating {id}: the other store was not woken"));
        assert_eq!(elsewhere.active_deployment_id().await.unwrap(), Some(id));
    }
}
