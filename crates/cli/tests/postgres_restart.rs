//! PostgreSQL stopped (`pg_ctl stop -m immediate`, as a crash would) and
//! started again under a running `nimbus up`: while it is down, `/v1` calls
//! that need the store answer 503 saying the store is unavailable and
//! `/readyz` is 503; once it is back, Nimbus serves again without being
//! restarted, nothing acknowledged before the stop is lost, and every
//! background task (queue workers, stream lanes, the scheduler, the history
//! writer) has carried on.
//!
//! A test binary of its own: it stops the test process's one PostgreSQL.

mod support;

use nimbus_test_programs as programs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use support::{Nimbus, TestApp, client, get_text, until};

/// Messages acknowledged before the database stops.
const KEPT_MESSAGES: usize = 50;
const MINUTE_MS: u64 = 60_000;

fn app() -> TestApp {
    TestApp::new("pgrestart")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "")
        .function(
            "worker",
            programs::EVENTS,
            "timeout_ms = 2000\n\n[queue.jobs]\n\n[queue.kept]",
        )
        .function(
            "consumer",
            programs::TABLES,
            "\n[table.orders]\npartition_key = \"customer\"\nstream = \"new_image\"",
        )
        .route_kind("queue", "queue = \"jobs\"\nfunction = \"worker\"")
        .route_kind(
            "stream",
            "table = \"orders\"\nfunction = \"consumer\"\nstarting_position = \"oldest\"",
        )
        .route_kind(
            "schedule",
            "name = \"tick\"\nfunction = \"worker\"\ncron = \"* * * * *\"",
        )
}

/// GET `path` on the admin listener: its status and JSON body.
async fn admin_get(nimbus: &Nimbus, path: &str) -> (StatusCode, Value) {
    let response = client().get(nimbus.admin_url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// POST a JSON body to `path` on the admin listener: its status and JSON body.
async fn admin_post(nimbus: &Nimbus, path: &str, body: Value) -> (StatusCode, Value) {
    let response = client()
        .post(nimbus.admin_url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Sends `body` to `queue` and returns its message id.
async fn send(nimbus: &Nimbus, queue: &str, body: &str) -> String {
    let (status, sent) = admin_post(
        nimbus,
        &format!("/v1/queues/{queue}/messages"),
        json!({ "body": body }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    sent["message_id"].as_str().unwrap().to_owned()
}

/// Waits until the worker has logged a line containing `needle`.
async fn handled(nimbus: &Nimbus, what: &str, needle: &str) {
    nimbus
        .stderr
        .wait_for(what, |l| l.contains("handled data=") && l.contains(needle))
        .await;
}

/// Runs a blocking `pg_ctl` call off the runtime's threads.
async fn pg_ctl(call: fn(&nimbus_test_postgres::Server) -> Result<(), String>) {
    tokio::task::spawn_blocking(move || call(nimbus_test_postgres::server()))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nimbus_rides_out_a_postgres_restart_and_loses_nothing_acknowledged() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = app();
    let mut nimbus = app.start_with(&["--store", &store, "--test-clock"]).await;

    // Up: ready, and everything works.
    let (status, ready) = admin_get(&nimbus, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");
    let mut kept = HashSet::new();
    for n in 0..KEPT_MESSAGES {
        kept.insert(send(&nimbus, "kept", &format!("kept-{n}")).await);
    }
    send(&nimbus, "jobs", "before-stop").await;
    handled(
        &nimbus,
        "for the job sent before the stop",
        "data=before-stop",
    )
    .await;

    pg_ctl(nimbus_test_postgres::Server::stop_immediately).await;

    // Down: the store is unavailable, and every answer says so.
    let (status, unready) = admin_get(&nimbus, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{unready}");
    assert_eq!(unready["status"], "store unavailable", "{unready}");
    assert_eq!(unready["error"], "the store is unavailable", "{unready}");
    let during = [
        admin_post(
            &nimbus,
            "/v1/queues/kept/messages",
            json!({ "body": "during" }),
        )
        .await,
        admin_post(&nimbus, "/v1/queues/kept/receive", json!({})).await,
        admin_get(&nimbus, "/v1/queues/kept").await,
        admin_get(&nimbus, "/v1/tables/orders/items/ann").await,
        admin_post(
            &nimbus,
            "/v1/tables/orders/items",
            json!({ "item": { "customer": "ann" } }),
        )
        .await,
    ];
    for (status, body) in &during {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("the store is unavailable: "),
            "not a clear error: {body}"
        );
    }
    // A function that needs no store still answers, and its invocation
    // record waits for the store.
    let hello = client().get(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(hello.status(), StatusCode::OK);
    let hello_id = support::invocation_id(&hello);
    // A tick comes due while the database is down: the scheduler cannot
    // fire it yet.
    let (status, moved) = admin_post(
        &nimbus,
        "/v1/test/clock",
        json!({ "advance_ms": MINUTE_MS }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");

    pg_ctl(nimbus_test_postgres::Server::start_server).await;

    // Back: ready again by itself, in the same process.
    until("for /readyz to say ready again", || async {
        let (status, _) = admin_get(&nimbus, "/readyz").await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(
        nimbus.child.try_wait().unwrap().is_none(),
        "nimbus exited:\n{}",
        nimbus.stderr.text()
    );

    // Nothing acknowledged before the stop is lost.
    let mut received = HashSet::new();
    while received.len() < kept.len() {
        let (status, batch) = admin_post(
            &nimbus,
            "/v1/queues/kept/receive",
            json!({ "max_messages": 10 }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{batch}");
        let messages = batch["messages"].as_array().unwrap();
        assert!(
            !messages.is_empty(),
            "the queue ran dry with {} of {} acknowledged messages received",
            received.len(),
            kept.len()
        );
        received.extend(
            messages
                .iter()
                .map(|m| m["message_id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(received, kept, "acknowledged messages lost or invented");

    // The background tasks kept going: the history writer stores the record
    // of the invocation that ended while the database was down, the queue
    // workers take a new job, the stream lanes see a new write, the
    // scheduler fires the tick that came due while the database was down,
    // and the history writer stores the new invocations.
    let record = until(
        "for the record of the invocation during the outage",
        || async {
            let (status, record) = admin_get(&nimbus, &format!("/v1/invocations/{hello_id}")).await;
            (status == StatusCode::OK).then_some(record)
        },
    )
    .await;
    assert_eq!(record["function"], "hello", "{record}");
    assert_eq!(record["outcome"], "success", "{record}");
    send(&nimbus, "jobs", "after-restart").await;
    handled(
        &nimbus,
        "for a job sent after the restart",
        "data=after-restart",
    )
    .await;
    let (status, put) = admin_post(
        &nimbus,
        "/v1/tables/orders/items",
        json!({ "item": { "customer": "bob" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    nimbus
        .stderr
        .wait_for("for the stream record of a write after the restart", |l| {
            l.contains("stream seq=") && l.contains("key=bob/")
        })
        .await;
    handled(
        &nimbus,
        "for the tick that came due while the database was down",
        "source=nimbus:schedule/tick",
    )
    .await;
    until("for the new job's invocation record", || async {
        get_text(nimbus.admin_url("/v1/functions/worker/logs"))
            .await
            .contains("data=after-restart")
            .then_some(())
    })
    .await;

    // The workers say when they reach the store again (each logged the
    // outage once at error level; see dispatch's `Failures`).
    nimbus
        .stderr
        .wait_for("a worker saying it reaches the store again", |l| {
            l.contains("reaches the store again after")
        })
        .await;
}
