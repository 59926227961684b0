//! The schema's version: a file that needs a newer nimbus is refused with
//! the versions named, a newer file that still allows this binary is used,
//! a version 2 file moves forward and still admits version 2 binaries (a
//! rolling upgrade), a version 3 file gains the deployment tables and still
//! admits them too, later versions add columns and keep what the file held,
//! version 8 drops the index on receipt handles (handles an older binary
//! gave out are stale, their messages come back), a version 1 file moves
//! forward keeping its data, and a file from before versions were kept is
//! adopted.

use nimbus_store::bucket::BucketStore;
use nimbus_store::deployment::{DeploymentStore, NewDeployment, component_digest};
use nimbus_store::lease::LeaseStore;
use nimbus_store::node::{NodeReport, NodeStore};
use nimbus_store::queue::QueueStore;
use nimbus_store::{Clock, StoreError, SystemClock};
use nimbus_store_sqlite::{Durability, SCHEMA_VERSION, SqliteOptions, SqliteStore};
use std::sync::Arc;

fn options(dir: &tempfile::TempDir) -> SqliteOptions {
    SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    }
}

/// Sets the file's schema numbers as a binary of another version would.
fn set_schema(dir: &tempfile::TempDir, applied: u32, requires: u32) {
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute(
            "UPDATE nimbus_schema SET applied = ?1, version = ?2",
            [applied, requires],
        )
        .unwrap();
}

/// `(applied, requires)` as the file holds them; `applied` is `None` in a
/// file no version-3 binary has opened.
fn schema_numbers(dir: &tempfile::TempDir) -> (Option<u32>, u32) {
    let conn = rusqlite::Connection::open(dir.path().join("nimbus.db")).unwrap();
    let has_applied: bool = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('nimbus_schema') WHERE name = 'applied'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let sql = if has_applied {
        "SELECT applied, version FROM nimbus_schema"
    } else {
        "SELECT NULL, version FROM nimbus_schema"
    };
    conn.query_row(sql, [], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
}

/// Turns a file this binary wrote back into what a version-7 binary
/// leaves: an index on receipt handles.
fn rewind_to_version_7(dir: &tempfile::TempDir) {
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "CREATE INDEX messages_receipt ON messages (receipt);
             UPDATE nimbus_schema SET applied = 7;",
        )
        .unwrap();
}

fn has_receipt_index(dir: &tempfile::TempDir) -> bool {
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_receipt'",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

/// Turns a file this binary wrote back into what a version-6 binary
/// leaves: no first receive time on messages.
fn rewind_to_version_6(dir: &tempfile::TempDir) {
    rewind_to_version_7(dir);
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "ALTER TABLE messages DROP COLUMN first_received_at;
             UPDATE nimbus_schema SET applied = 6;",
        )
        .unwrap();
}

/// Turns a file this binary wrote back into what a version-5 binary
/// leaves: no spans column, no index by trace.
fn rewind_to_version_5(dir: &tempfile::TempDir) {
    rewind_to_version_6(dir);
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "DROP INDEX invocations_trace;
             ALTER TABLE invocations DROP COLUMN spans;
             UPDATE nimbus_schema SET applied = 5;",
        )
        .unwrap();
}

/// Turns a file this binary wrote back into what a version-4 binary
/// leaves: no usage table, no metered columns.
fn rewind_to_version_4(dir: &tempfile::TempDir) {
    rewind_to_version_5(dir);
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "DROP TABLE usage;
             ALTER TABLE invocations DROP COLUMN memory_mb;
             ALTER TABLE invocations DROP COLUMN billed_ms;
             ALTER TABLE invocations DROP COLUMN outbound_bytes;
             UPDATE nimbus_schema SET applied = 4;",
        )
        .unwrap();
}

/// Turns a file this binary wrote back into what a version-3 binary leaves:
/// no deployments or components.
fn rewind_to_version_3(dir: &tempfile::TempDir) {
    rewind_to_version_4(dir);
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "DROP TABLE components; DROP TABLE deployments;
             DROP TABLE deployment_components; DROP TABLE deployment_state;
             UPDATE nimbus_schema SET applied = 3;",
        )
        .unwrap();
}

/// Turns a file this binary wrote back into what a version-2 binary leaves:
/// no node reports, no node or uploader column, no `applied` number.
fn rewind_to_version_2(dir: &tempfile::TempDir) {
    rewind_to_version_3(dir);
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "DROP TABLE nodes;
             ALTER TABLE invocations DROP COLUMN node;
             ALTER TABLE uploads DROP COLUMN uploader;
             ALTER TABLE nimbus_schema DROP COLUMN applied;
             UPDATE nimbus_schema SET version = 2;",
        )
        .unwrap();
}

#[tokio::test]
async fn a_schema_that_needs_a_newer_binary_is_refused_naming_the_versions() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap());
    let newer = SCHEMA_VERSION + 1;
    set_schema(&dir, newer, newer);

    let refused = SqliteStore::open(&options(&dir), Arc::new(SystemClock))
        .err()
        .expect("a newer schema must be refused");
    assert_eq!(
        refused,
        StoreError::SchemaTooNew {
            found: newer,
            requires: newer,
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
async fn a_newer_schema_that_still_allows_this_binary_is_used_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    // As the next version leaves it after an additive migration.
    set_schema(&dir, SCHEMA_VERSION + 1, SCHEMA_VERSION);

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    drop(store);
    assert_eq!(
        schema_numbers(&dir),
        (Some(SCHEMA_VERSION + 1), SCHEMA_VERSION),
        "an older binary does not roll the numbers back"
    );
}

#[tokio::test]
async fn a_version_2_file_migrates_forward_and_still_admits_version_2_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_2(&dir);
    assert_eq!(schema_numbers(&dir), (None, 2));

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    store
        .report_node(&NodeReport {
            node: "node-a".into(),
            version: "0.1.0".into(),
            started_at: 1,
            reported_at: 0,
            in_flight: 0,
        })
        .await
        .unwrap();
    assert_eq!(store.node_reports().await.unwrap().len(), 1);
    drop(store);
    // A version-2 binary reads `version` alone and refuses past 2.
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_3_file_gains_the_deployment_tables_and_still_admits_version_2_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_3(&dir);
    assert_eq!(schema_numbers(&dir), (Some(3), 2));

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    let digest = component_digest(b"api");
    store.put_component(&digest, b"api".to_vec()).await.unwrap();
    let made = store
        .create_deployment(NewDeployment {
            manifest: String::new(),
            components: [("api".to_owned(), digest)].into(),
            digest: "v1".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(made.id, 1);
    store.activate(made.id).await.unwrap();
    assert_eq!(store.active_deployment_id().await.unwrap(), Some(1));
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_7_file_drops_the_receipt_index_and_leases_handed_out_before_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert!(!has_receipt_index(&dir));
    store.declare_queues(&[queue()]).await.unwrap();
    store
        .send("q", vec![nimbus_store::SendMessage::default()])
        .await
        .unwrap();
    drop(store);
    rewind_to_version_7(&dir);
    assert!(has_receipt_index(&dir));
    // Leased by a version-7 binary, whose handles were bare UUIDs; the
    // lease is over.
    let old_handle = "0b7d1a5e-9a4c-4e55-8d0e-4c1f0c6b2a11";
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute(
            "UPDATE messages SET receipt = ?1, receive_count = 1, visible_at = 0",
            [old_handle],
        )
        .unwrap();
    assert_eq!(schema_numbers(&dir), (Some(7), 2));

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    assert!(!has_receipt_index(&dir));
    assert_eq!(
        store.delete("q", old_handle).await,
        Err(StoreError::StaleReceipt)
    );
    let again = store.receive("q", 1, None).await.unwrap().remove(0);
    assert_eq!(again.receive_count, 2);
    store.delete("q", &again.receipt_handle).await.unwrap();
    assert!(store.receive("q", 1, Some(0)).await.unwrap().is_empty());
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_6_file_gains_first_receive_times_and_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    store
        .send("q", vec![nimbus_store::SendMessage::default()])
        .await
        .unwrap();
    drop(store);
    rewind_to_version_6(&dir);
    // Received once by a version-6 binary, its lease over.
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch("UPDATE messages SET receive_count = 1")
        .unwrap();
    assert_eq!(schema_numbers(&dir), (Some(6), 2));

    let before = SystemClock.now_ms();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    let first = store.receive("q", 1, Some(0)).await.unwrap().remove(0);
    assert_eq!(first.receive_count, 2);
    // No first receive was kept, so this one's time stands in.
    assert!((before..=SystemClock.now_ms()).contains(&first.first_received_at));
    let again = store.receive("q", 1, None).await.unwrap().remove(0);
    assert_eq!(
        (again.receive_count, again.first_received_at),
        (3, first.first_received_at)
    );
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_5_file_gains_spans_and_keeps_its_records() {
    use nimbus_store::history::{HistoryStore, InvocationFilter};
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap());
    rewind_to_version_5(&dir);
    assert_eq!(schema_numbers(&dir), (Some(5), 2));
    // A record a version-5 binary wrote, without spans.
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO invocations (id, function, trigger, source, started_at, recorded_at,
                duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated, node,
                memory_mb, billed_ms, outbound_bytes)
             VALUES ('01', 'f', 'http', '/', 1, 1, 5, 'success', NULL, 1,
                '4bf92f3577b34da6a3ce929d0e0e4736', '[]', 0, NULL, 128, 5, 0)",
        )
        .unwrap();

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    let old = store.get_invocation("01").await.unwrap().unwrap();
    assert_eq!((old.spans.len(), old.spans_dropped), (0, 0));
    let traced = store
        .list_invocations(InvocationFilter {
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
            limit: 10,
            ..InvocationFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(traced.len(), 1);
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_4_file_gains_usage_and_still_admits_older_binaries() {
    use nimbus_store::history::{HistoryStore, UsageFilter};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_4(&dir);
    assert_eq!(schema_numbers(&dir), (Some(4), 2));
    // A record an older binary wrote, without the metered columns.
    rusqlite::Connection::open(dir.path().join("nimbus.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO invocations (id, function, trigger, source, started_at, recorded_at,
                duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated, node)
             VALUES ('01', 'f', 'http', '/', 1, 1, 5, 'success', NULL, 1, NULL, '[]', 0, NULL)",
        )
        .unwrap();

    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    let old = store.get_invocation("01").await.unwrap().unwrap();
    assert_eq!(
        (old.memory_mb, old.billed_ms, old.outbound_bytes),
        (0, 0, 0)
    );
    let all = UsageFilter {
        from: 0,
        to: u64::MAX / 2,
        function: None,
    };
    assert_eq!(store.usage(all).await.unwrap(), []);
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
}

#[tokio::test]
async fn a_version_1_file_migrates_forward_and_gains_the_lease_and_upload_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&options(&dir), Arc::new(SystemClock)).unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_2(&dir);
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
    store.begin_upload("b", "blob", "node-a").await.unwrap();
    assert!(
        store
            .unreferenced_blobs("b", vec!["blob".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
    drop(store);
    assert_eq!(schema_numbers(&dir), (Some(SCHEMA_VERSION), 2));
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
