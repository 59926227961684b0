//! The schema's version on PostgreSQL: migrations run once however many
//! processes start at once, a version 2 schema moves forward and still
//! admits version 2 nodes (a rolling upgrade), a version 3 schema gains the
//! deployment tables and still admits them too, a version 1 schema moves forward
//! keeping its data, a schema that needs a newer nimbus is refused with the
//! versions named, and a newer one that does not is used.

use nimbus_store::StoreError;
use nimbus_store::bucket::BucketStore;
use nimbus_store::deployment::{DeploymentStore, NewDeployment, component_digest};
use nimbus_store::history::HistoryStore;
use nimbus_store::lease::LeaseStore;
use nimbus_store::node::{NodeReport, NodeStore};
use nimbus_store::queue::QueueStore;
use nimbus_store_postgres::{PgOptions, PgStore, SCHEMA_VERSION};

fn options(url: &str) -> PgOptions {
    PgOptions {
        url: url.to_owned(),
        relaxed_durability: false,
        pool_size: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_starting_at_once_on_an_empty_database_all_open_it() {
    let fresh = nimbus_test_postgres::server().fresh();
    let opening: Vec<_> = (0..6)
        .map(|_| {
            let url = fresh.url.clone();
            tokio::spawn(async move { PgStore::connect(&options(&url), None).await })
        })
        .collect();
    for open in opening {
        let store = open.await.unwrap().unwrap();
        assert!(store.queues().await.unwrap().is_empty());
    }
}

/// Turns a schema this binary wrote back into what a version-6 binary
/// leaves: no first receive time on messages.
fn rewind_to_version_6(server: &nimbus_test_postgres::Server, schema: &str) {
    server.sql(&format!(
        "ALTER TABLE {schema}.messages DROP COLUMN first_received_at;
         UPDATE {schema}.nimbus_schema SET applied = 6"
    ));
}

/// Turns a schema this binary wrote back into what a version-5 binary
/// leaves: no spans column, no index by trace.
fn rewind_to_version_5(server: &nimbus_test_postgres::Server, schema: &str) {
    rewind_to_version_6(server, schema);
    server.sql(&format!(
        "DROP INDEX {schema}.invocations_trace;
         ALTER TABLE {schema}.invocations DROP COLUMN spans;
         UPDATE {schema}.nimbus_schema SET applied = 5"
    ));
}

/// Turns a schema this binary wrote back into what a version-4 binary
/// leaves: no usage table, no metered columns.
fn rewind_to_version_4(server: &nimbus_test_postgres::Server, schema: &str) {
    rewind_to_version_5(server, schema);
    server.sql(&format!(
        "DROP TABLE {schema}.usage;
         ALTER TABLE {schema}.invocations DROP COLUMN memory_mb, DROP COLUMN billed_ms,
            DROP COLUMN outbound_bytes;
         UPDATE {schema}.nimbus_schema SET applied = 4"
    ));
}

/// Turns a schema this binary wrote back into what a version-3 binary
/// leaves: no deployments or components.
fn rewind_to_version_3(server: &nimbus_test_postgres::Server, schema: &str) {
    rewind_to_version_4(server, schema);
    server.sql(&format!(
        "DROP TABLE {schema}.components; DROP TABLE {schema}.deployments;
         DROP TABLE {schema}.deployment_components; DROP TABLE {schema}.deployment_state;
         UPDATE {schema}.nimbus_schema SET applied = 3"
    ));
}

/// Turns a schema this binary wrote back into what a version-2 binary
/// leaves: no node reports, no node or uploader column, no `applied`
/// number.
fn rewind_to_version_2(server: &nimbus_test_postgres::Server, schema: &str) {
    rewind_to_version_3(server, schema);
    server.sql(&format!(
        "DROP TABLE {schema}.nodes; ALTER TABLE {schema}.invocations DROP COLUMN node;
         ALTER TABLE {schema}.uploads DROP COLUMN uploader;
         ALTER TABLE {schema}.nimbus_schema DROP COLUMN applied;
         UPDATE {schema}.nimbus_schema SET version = 2"
    ));
}

#[tokio::test]
async fn a_version_2_schema_migrates_forward_and_still_admits_version_2_nodes() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_2(server, &fresh.schema);

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    store
        .report_node(&NodeReport {
            node: "node-a".into(),
            version: "0.1.0".into(),
            started_at: 1,
            reported_at: 0,
            in_flight: 2,
        })
        .await
        .unwrap();
    assert_eq!(store.node_reports().await.unwrap()[0].in_flight, 2);
    // A version-2 node reads `version` alone and refuses past 2; the
    // invocation insert it makes (no node column) still fits.
    assert_eq!(
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        )),
        format!("{SCHEMA_VERSION} 2")
    );
    server.sql(&format!(
        "INSERT INTO {}.invocations (id, function, trigger, source, started_at, recorded_at,
            duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated)
         VALUES ('01', 'f', 'http', '/', 1, 1, 1, 'success', NULL, 1, NULL, '[]', false)",
        fresh.schema
    ));
    let record = store.get_invocation("01").await.unwrap().unwrap();
    assert_eq!(record.node, None);
}

#[tokio::test]
async fn a_version_6_schema_gains_first_receive_times_and_keeps_its_messages() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    store
        .send("q", vec![nimbus_store::SendMessage::default()])
        .await
        .unwrap();
    drop(store);
    rewind_to_version_6(server, &fresh.schema);
    // Received once by a version-6 node, its lease over.
    server.sql(&format!(
        "UPDATE {}.messages SET receive_count = 1",
        fresh.schema
    ));

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    let first = store.receive("q", 1, Some(0)).await.unwrap().remove(0);
    assert_eq!(first.receive_count, 2);
    // No first receive was kept, so this one's time stands in (the
    // database's clock, within a minute of this machine's).
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(first.first_received_at.abs_diff(local) < 60_000);
    let again = store.receive("q", 1, None).await.unwrap().remove(0);
    assert_eq!(
        (again.receive_count, again.first_received_at),
        (3, first.first_received_at)
    );
    assert_eq!(
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        )),
        format!("{SCHEMA_VERSION} 2")
    );
}

#[tokio::test]
async fn a_version_5_schema_gains_spans_and_keeps_its_records() {
    use nimbus_store::history::{HistoryStore, InvocationFilter};
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    drop(PgStore::connect(&options(&fresh.url), None).await.unwrap());
    rewind_to_version_5(server, &fresh.schema);
    // A record a version-5 node wrote, without spans.
    server.sql(&format!(
        "INSERT INTO {}.invocations (id, function, trigger, source, started_at, recorded_at,
            duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated, node,
            memory_mb, billed_ms, outbound_bytes)
         VALUES ('01', 'f', 'http', '/', 1, 1, 5, 'success', NULL, 1,
            '4bf92f3577b34da6a3ce929d0e0e4736', '[]', false, NULL, 128, 5, 0)",
        fresh.schema
    ));

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
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
    assert_eq!(
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        )),
        format!("{SCHEMA_VERSION} 2")
    );
}

#[tokio::test]
async fn a_version_4_schema_gains_usage_and_still_admits_older_nodes() {
    use nimbus_store::history::{HistoryStore, UsageFilter};
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_4(server, &fresh.schema);
    // A record an older node wrote, without the metered columns.
    server.sql(&format!(
        "INSERT INTO {}.invocations (id, function, trigger, source, started_at, recorded_at,
            duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated, node)
         VALUES ('01', 'f', 'http', '/', 1, 1, 5, 'success', NULL, 1, NULL, '[]', false, NULL)",
        fresh.schema
    ));

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
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
    assert_eq!(
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        )),
        format!("{SCHEMA_VERSION} 2")
    );
}

#[tokio::test]
async fn a_version_3_schema_gains_the_deployment_tables_and_still_admits_version_2_nodes() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_3(server, &fresh.schema);
    let numbers = || {
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        ))
    };
    assert_eq!(numbers(), "3 2");

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
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
    assert_eq!(numbers(), format!("{SCHEMA_VERSION} 2"));
}

#[tokio::test]
async fn a_version_1_schema_migrates_forward_and_gains_the_lease_and_upload_tables() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    rewind_to_version_2(server, &fresh.schema);
    // What version 1 left: every table but the leases and the upload
    // registry.
    server.sql(&format!(
        "DROP TABLE {0}.uploads; DROP TABLE {0}.leases; UPDATE {0}.nimbus_schema SET version = 1",
        fresh.schema
    ));

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
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
    assert_eq!(
        server.query(&format!(
            "SELECT applied FROM {}.nimbus_schema",
            fresh.schema
        )),
        SCHEMA_VERSION.to_string()
    );
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

#[tokio::test]
async fn a_schema_that_needs_a_newer_binary_is_refused_naming_the_versions() {
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    drop(PgStore::connect(&options(&fresh.url), None).await.unwrap());
    let newer = SCHEMA_VERSION + 1;
    server.sql(&format!(
        "UPDATE {}.nimbus_schema SET version = {newer}, applied = {newer}",
        fresh.schema
    ));

    let refused = PgStore::connect(&options(&fresh.url), None)
        .await
        .expect_err("a newer schema must be refused");
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
    let server = nimbus_test_postgres::server();
    let fresh = server.fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store.declare_queues(&[queue()]).await.unwrap();
    drop(store);
    // As the next version leaves it after an additive migration.
    let newer = SCHEMA_VERSION + 1;
    server.sql(&format!(
        "UPDATE {}.nimbus_schema SET version = {SCHEMA_VERSION}, applied = {newer}",
        fresh.schema
    ));

    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    assert_eq!(store.queues().await.unwrap(), [queue()]);
    assert_eq!(
        server.query(&format!(
            "SELECT applied || ' ' || version FROM {}.nimbus_schema",
            fresh.schema
        )),
        format!("{newer} {SCHEMA_VERSION}"),
        "an older binary does not roll the numbers back"
    );
}

#[tokio::test]
async fn time_is_the_database_clock_without_a_test_clock() {
    // A message sent now is stamped by the server's clock: within a minute
    // of this machine's, since both run here.
    let fresh = nimbus_test_postgres::server().fresh();
    let store = PgStore::connect(&options(&fresh.url), None).await.unwrap();
    store
        .declare_queues(&[nimbus_store::QueueConfig {
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
    store
        .send("q", vec![nimbus_store::SendMessage::default()])
        .await
        .unwrap();
    let received = store.receive("q", 1, None).await.unwrap();
    let local = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        received[0].sent_at.abs_diff(local) < 60_000,
        "sent_at {} vs local {local}",
        received[0].sent_at
    );
}
