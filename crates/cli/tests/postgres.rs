//! `nimbus up --store postgres://...`: a store that cannot be used stops
//! startup with one clear line and never shows the password; state kept in
//! PostgreSQL outlives the server.

mod support;

use nimbus_test_programs as programs;
use support::{TestApp, client, nimbus};

fn app() -> TestApp {
    let app = TestApp::new("pg")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    app.write();
    app
}

/// Runs `nimbus up` with `store` and returns its exit status and its last
/// line of error output.
fn up_with_store(app: &TestApp, store: &str) -> (std::process::ExitStatus, String) {
    let manifest = app.manifest_path();
    let data = app.data_dir();
    let output = nimbus(
        &[
            "up",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--store",
            store,
        ],
        app.dir.path(),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("hunter2") && !String::from_utf8_lossy(&output.stdout).contains("hunter2"),
        "the password leaked: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    (output.status, last)
}

#[test]
fn an_unreachable_server_stops_up_with_one_line_and_no_password() {
    let (status, line) = up_with_store(&app(), "postgres://ann:hunter2@127.0.0.1:1/nimbus");
    assert!(!status.success());
    assert!(
        line.contains("cannot connect to PostgreSQL at postgres://ann@127.0.0.1:1/nimbus")
            && line.contains("Connection refused"),
        "{line}"
    );
}

#[test]
fn a_role_the_server_does_not_know_is_refused_with_its_reason() {
    let server = nimbus_test_postgres::server();
    let url = format!(
        "postgres://nobody:hunter2@localhost/nimbus?host={}",
        server.socket_dir().display()
    );
    let (status, line) = up_with_store(&app(), &url);
    assert!(!status.success());
    assert!(
        line.contains("refused the connection") && line.contains("\"nobody\" does not exist"),
        "{line}"
    );
}

#[test]
fn a_store_that_is_neither_sqlite_nor_postgres_is_refused_without_echoing_it() {
    let (status, line) = up_with_store(&app(), "mysql://ann:hunter2@127.0.0.1/nimbus");
    assert!(!status.success());
    assert!(
        line.contains("must be sqlite:PATH or postgres://") && line.contains("`mysql:`"),
        "{line}"
    );
}

#[tokio::test]
async fn a_message_sent_through_one_server_is_received_by_the_next_from_postgres() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("pg-restart")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let manifest = app.write();
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest).unwrap() + "\n[queue.jobs]\n",
    )
    .unwrap();

    // Each server has a data directory of its own: the queue lives only in
    // PostgreSQL.
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = support::Nimbus::start(&manifest, first_dir.path(), &["--store", &store]).await;
    let sent: serde_json::Value = client()
        .post(first.admin_url("/v1/queues/jobs/messages"))
        .json(&serde_json::json!({ "body": "kept in postgres" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    first.terminate();
    assert_eq!(first.exit_code().await, Some(0));

    let second_dir = tempfile::tempdir().unwrap();
    let second = support::Nimbus::start(&manifest, second_dir.path(), &["--store", &store]).await;
    let received: serde_json::Value = client()
        .post(second.admin_url("/v1/queues/jobs/receive"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = received["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{received}");
    assert_eq!(messages[0]["message_id"], sent["message_id"]);
    assert_eq!(messages[0]["body"], "kept in postgres");
}
