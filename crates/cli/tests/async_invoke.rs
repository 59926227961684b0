//! Asynchronous invocation through the real server: acknowledged once
//! durable, then run; failures retried up to `max_retry_attempts`; outcome
//! records sent to `on_success` / `on_failure` (a queue or a function).

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{Nimbus, TestApp, client, get_json, until};

async fn invoke_async(nimbus: &Nimbus, function: &str, data: &str) -> String {
    let response = client()
        .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke-async")))
        .header("content-type", "text/plain")
        .body(data.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    body["event_id"].as_str().unwrap().to_owned()
}

async fn messages(nimbus: &Nimbus, queue: &str) -> Vec<Value> {
    let page: Value = get_json(nimbus.admin_url(&format!("/v1/queues/{queue}/messages"))).await;
    page["messages"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_async_event_is_acknowledged_then_run_and_its_success_recorded() {
    let app = TestApp::new("asyncok").function(
        "worker",
        programs::EVENTS,
        "[function.worker.async]\non_success = \"queue:done\"\n\n[queue.done]",
    );
    let nimbus = app.start().await;
    let id = invoke_async(&nimbus, "worker", "later").await;
    let line = nimbus
        .stderr
        .wait_for("with the event handled", |l| {
            l.contains("handled data=later ")
        })
        .await;
    assert!(
        line.contains("attempt=1 batch=1 source=nimbus:invoke") && line.contains(&id),
        "{line}"
    );
    let records = until("for the success record", || async {
        let found = messages(&nimbus, "done").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "Success");
    assert_eq!(record["event_id"], id.as_str());
    assert_eq!(record["event"]["data"], "later");
    assert_eq!(record["function"], "worker");
}

#[tokio::test]
async fn failures_are_retried_then_recorded_at_the_failure_destination() {
    let app = TestApp::new("asyncfail")
        .function(
            "worker",
            programs::EVENTS,
            "[function.worker.async]\nmax_retry_attempts = 1\nretry_backoff = { initial_ms = 0, max_ms = 0 }\non_failure = \"function:auditor\"",
        )
        .function("auditor", programs::EVENTS, "");
    let nimbus = app.start().await;
    let id = invoke_async(&nimbus, "worker", "fail").await;
    // The auditor receives the record of the exhausted retries as its event.
    let audited = nimbus
        .stderr
        .wait_for("with the failure record at the auditor", |l| {
            l.contains("RetriesExhausted") && l.contains("function=auditor")
        })
        .await;
    assert!(audited.contains(&id), "{audited}");
    let attempts: Vec<String> = nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("handled data=fail ") && l.contains("function=worker"))
        .collect();
    // One attempt plus max_retry_attempts = 1 retry, and no more.
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(attempts[1].contains("attempt=2"));
    assert!(audited.contains("\"attempts\":2"), "{audited}");
}

#[tokio::test]
async fn async_invocation_refuses_unknown_and_http_functions() {
    let app = TestApp::new("asyncbad")
        .function("worker", programs::EVENTS, "")
        .function("hello", programs::HELLO, "");
    let nimbus = app.start().await;
    let post = |function: &str| {
        client()
            .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke-async")))
            .body("x")
            .send()
    };
    assert_eq!(post("ghost").await.unwrap().status(), 404);
    assert_eq!(post("hello").await.unwrap().status(), 400);

    let dir = tempfile::tempdir().unwrap();
    let output = support::nimbus(
        &[
            "invoke",
            "worker",
            "--async",
            "--data",
            "cli",
            "--admin",
            nimbus.admin.as_str(),
        ],
        dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let queued: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(queued["event_id"].is_string(), "{queued}");
    nimbus
        .stderr
        .wait_for("with the CLI's event handled", |l| {
            l.contains("handled data=cli ")
        })
        .await;
}
