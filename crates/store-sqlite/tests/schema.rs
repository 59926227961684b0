//! The schema's version: a file written by a newer nimbus is refused with
//! both versions named, a version 1 file moves forward keeping its data,
//! and a file from before versions were kept is adopted.

use nimbus_store::bucket::BucketStore;
use nimbus_store::lease::LeaseStore;
use nimbus_store::queue::QueueStore;
use nimbus_store::{StoreError, SystemClock};
use nimbus_store_sqlite::{Durability, SCHEMA_VERSION, SqliteOptions, SqliteStore};
use std::sync::Arc;

fn options(dir: &tempfile::TempDir) -> SqliteOptions {
    SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    }
}

#[tokio::test]
async fn a_schema_newer_than_this_binary_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap());
    let newer = SCHEMA_VERSION + 1;
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute("UPDATE nimbus_schema SET version = ?1", [newer])
        .unwrap();

    let refused = SqliteStore::open(&options(&dir), Arc::new(SystemClock))
        .err()
        .expect("a newer schema must be refused");
    assert_eq!(
        refused,
        StoreError::SchemaTooNew {
            found: newer,
            known: SCHEMA_VERSION
        }
    );
    let message = refused.to_string();
    assert!(
        message.contains(&format!("version {newer}"))
            && message.contains(&format!("version {SCHEMA_VERSION}")),
        "{message}"
    );
}

#[tokio::test]
async fn a_version_1_file_migrates_forward_and_gains_the_lease_and_upload_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    // What version 1 left: every table but the leases and the upload
    // registry.
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "DROP TABLE uploads; DROP TABLE leases; UPDATE nimbus_schema SET version = 1",
        )
        .unwrap();

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    let lease = store
        .acquire_lease("sweep:blobs", "node-a", 15_000)
        .await
        .unwrap();
    assert_eq!(lease.map(|l| l.fence), Some(1));
    store.begin_upload("b", "blob").await.unwrap();
    assert!(
        store
            .unreferenced_blobs("b", vec!["blob".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
    drop(store);
    let version: u32 = rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .query_row("SELECT version FROM nimbus_schema", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_file_from_before_schema_versions_is_adopted_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    // What a binary from before versions left: the tables, no version row.
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute("DROP TABLE nimbus_schema", [])
        .unwrap();

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
}

fn queue() -> nimbus_store::QueueConfig {
    nimbus_store::QueueConfig {
        name: "q".into(),
        visibility_timeout_ms: 30_000,
        retention_ms: 3_600_000,
        delay_ms: 0,
        max_message_bytes: 1024,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}
