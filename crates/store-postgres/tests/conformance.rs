//! The store conformance suites against PostgreSQL: a private server for
//! this test process, a fresh schema per test, on a manual clock.

use nimbus_store::ManualClock;
use nimbus_store::conformance::Backend;
use nimbus_store_postgres::{DEFAULT_POOL_SIZE, PgOptions, PgStore};
use std::sync::Arc;

struct Postgres {
    url: String,
}

impl Postgres {
    fn fresh() -> Self {
        Postgres {
            url: nimbus_test_postgres::server().fresh_url(),
        }
    }
}

impl Backend for Postgres {
    type Store = PgStore;

    async fn open(&self, clock: ManualClock) -> PgStore {
        let options = PgOptions {
            url: self.url.clone(),
            relaxed_durability: false,
            pool_size: DEFAULT_POOL_SIZE,
        };
        PgStore::connect(&options, Some(Arc::new(clock)))
            .await
            .unwrap()
    }
}

nimbus_store::queue_conformance_tests!(Postgres::fresh());

mod keys {
    use super::*;
    nimbus_store::key_conformance_tests!(Postgres::fresh());
}

mod secrets {
    use super::*;
    nimbus_store::secret_conformance_tests!(Postgres::fresh());
}

mod history {
    use super::*;
    nimbus_store::history_conformance_tests!(Postgres::fresh());
}

mod tables {
    use super::*;
    nimbus_store::table_conformance_tests!(Postgres::fresh());
}

mod schedules {
    use super::*;
    nimbus_store::schedule_conformance_tests!(Postgres::fresh());
}

mod buckets {
    use super::*;
    nimbus_store::bucket_conformance_tests!(Postgres::fresh());
}

mod leases {
    use super::*;
    nimbus_store::lease_conformance_tests!(Postgres::fresh());
}

mod concurrency {
    use super::*;
    nimbus_store::concurrency_conformance_tests!(Postgres::fresh());
}

mod signals {
    use super::*;
    nimbus_store::signal_conformance_tests!(Postgres::fresh());
}

mod deployments {
    use super::*;
    nimbus_store::deployment_conformance_tests!(Postgres::fresh());
}

/// Group commit: requests that arrive together share commits.
mod group_commit {
    use super::*;
    use nimbus_store::{QueueConfig, QueueStore, SendMessage, Store, StoreObserver};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    struct Commits {
        commits: AtomicU64,
        requests: AtomicU64,
    }

    impl StoreObserver for Commits {
        fn committed(&self, requests: usize, _took: Duration) {
            self.commits.fetch_add(1, Ordering::Relaxed);
            self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        }
        fn dead_lettered(&self, _queue: &str, _messages: u64) {}
    }

    const SENDERS: usize = 64;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sends_arriving_together_share_commits_and_each_is_stored() {
        let store = Arc::new(
            Postgres::fresh()
                .open(ManualClock::new(1_700_000_000_000))
                .await,
        );
        store
            .declare_queues(&[QueueConfig {
                name: "jobs".into(),
                visibility_timeout_ms: 60_000,
                retention_ms: 86_400_000,
                delay_ms: 0,
                max_message_bytes: 1024,
                dedup_window_ms: 0,
                max_receive_count: None,
                dead_letter_queue: None,
            }])
            .await
            .unwrap();
        // Reads the queue's settings into the cache, so the senders below
        // go straight to the batcher.
        let warm = SendMessage {
            body: b"first".to_vec(),
            ..SendMessage::default()
        };
        store.send("jobs", vec![warm]).await.unwrap();
        let commits = Arc::new(Commits::default());
        store.observe(commits.clone());
        let start = Arc::new(tokio::sync::Barrier::new(SENDERS));
        let senders: Vec<_> = (0..SENDERS)
            .map(|i| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let message = SendMessage {
                        body: format!("message {i}").into_bytes(),
                        ..SendMessage::default()
                    };
                    store.send("jobs", vec![message]).await.unwrap()
                })
            })
            .collect();
        for sender in senders {
            sender.await.unwrap();
        }
        let stats = store.stats("jobs").await.unwrap();
        assert_eq!(stats.visible, SENDERS as u64 + 1);
        let (commits, requests) = (
            commits.commits.load(Ordering::Relaxed),
            commits.requests.load(Ordering::Relaxed),
        );
        // `stats` is one more commit carrying one request.
        assert_eq!(requests, SENDERS as u64 + 1);
        eprintln!("{requests} requests in {commits} commits");
        assert!(
            commits < requests / 2,
            "{requests} requests in {commits} commits: sends arriving together must share commits"
        );
    }
}
