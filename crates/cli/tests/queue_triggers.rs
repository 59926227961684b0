//! Event functions consuming queues through the real server: batching,
//! partial batch failure, whole-batch failure on a trap, retry backoff,
//! dead-lettering after exactly `max_receive_count`, and grants.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use support::{Nimbus, TestApp, client, get_json, until};

async fn send_batch(nimbus: &Nimbus, queue: &str, bodies: &[&str]) {
    let messages: Vec<Value> = bodies.iter().map(|b| json!({ "body": b })).collect();
    let response = client()
        .post(nimbus.admin_url(&format!("/v1/queues/{queue}/messages/batch")))
        .body(json!({ "messages": messages }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn stats(nimbus: &Nimbus, queue: &str) -> Value {
    get_json(nimbus.admin_url(&format!("/v1/queues/{queue}"))).await
}

/// Lines the event function printed for events whose data is `data`.
fn deliveries(nimbus: &Nimbus, data: &str) -> Vec<String> {
    let needle = format!("handled data={data} ");
    nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains(&needle))
        .collect()
}

fn worker_app(name: &str, queue: &str, trigger: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "worker",
            programs::EVENTS,
            &format!("timeout_ms = 5000\nallow = [\"queue:out:send\"]\n{queue}"),
        )
        .route_kind(
            "queue",
            &format!("queue = \"jobs\"\nfunction = \"worker\"\n{trigger}"),
        )
}

const QUEUES: &str = "[queue.jobs]\nmax_receive_count = 3\ndead_letter_queue = \"jobs-dlq\"\n[queue.jobs-dlq]\n[queue.out]\n[queue.secret]\n";

#[tokio::test]
async fn messages_are_delivered_in_batches_as_cloudevents_and_deleted() {
    let app = worker_app(
        "batches",
        QUEUES,
        "batch_size = 3\nbatch_window_ms = 2000\nmax_concurrency = 1",
    );
    let nimbus = app.start().await;
    // Three separate sends: the first wakes the worker, and only the batch
    // window lets the other two join its batch.
    for data in ["a", "b", "c"] {
        send_batch(&nimbus, "jobs", &[data]).await;
    }
    nimbus
        .stderr
        .wait_for_count("with the whole batch handled", 3, |l| {
            l.contains("handled data=")
        })
        .await;
    for data in ["a", "b", "c"] {
        let lines = deliveries(&nimbus, data);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0]
                .contains("attempt=1 batch=3 source=nimbus:queue/jobs type=nimbus.queue.message"),
            "{}",
            lines[0]
        );
    }
    // All three deleted once handled: nothing visible, nothing leased.
    until("for the batch to be deleted", || async {
        let s = stats(&nimbus, "jobs").await;
        (s["visible"] == 0 && s["in_flight"] == 0 && s["delayed"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn only_reported_failures_are_retried_and_a_poison_message_lands_in_the_dlq() {
    let trigger = "batch_size = 2\nbatch_window_ms = 2000\nmax_concurrency = 1\nreport_batch_item_failures = true\nretry_backoff = { initial_ms = 0, max_ms = 0 }";
    let nimbus = worker_app("partial", QUEUES, trigger).start().await;
    send_batch(&nimbus, "jobs", &["ok", "fail"]).await;
    // Three receives (max_receive_count = 3) then the fourth moves it.
    nimbus
        .stderr
        .wait_for("with the third attempt", |l| {
            l.contains("handled data=fail attempt=3")
        })
        .await;
    until("for the poison message in the DLQ", || async {
        (stats(&nimbus, "jobs-dlq").await["visible"] == 1).then_some(())
    })
    .await;
    assert_eq!(deliveries(&nimbus, "ok").len(), 1);
    assert_eq!(deliveries(&nimbus, "fail").len(), 3);
    let dead: Value = get_json(nimbus.admin_url("/v1/queues/jobs-dlq/messages")).await;
    assert_eq!(dead["messages"][0]["body"], "fail");
    assert_eq!(
        dead["messages"][0]["last_error"],
        "reported as failed by the handler"
    );
}

#[tokio::test]
async fn a_trap_fails_the_whole_batch_and_the_backoff_delays_the_retry() {
    let trigger = "batch_size = 2\nbatch_window_ms = 2000\nmax_concurrency = 1\nreport_batch_item_failures = true\nretry_backoff = { initial_ms = 600000, max_ms = 600000 }";
    let nimbus = worker_app("trapped", QUEUES, trigger).start().await;
    send_batch(&nimbus, "jobs", &["fine", "trap"]).await;
    nimbus
        .stderr
        .wait_for("with the trap logged", |l| {
            l.contains("invocation failed") && l.contains("function=worker")
        })
        .await;
    // Both went back, and the backoff keeps them invisible (not deleted).
    let after = until("for the batch to be given back", || async {
        let s = stats(&nimbus, "jobs").await;
        (s["delayed"] == 2).then_some(s)
    })
    .await;
    assert_eq!(
        (after["visible"].as_u64(), after["delayed"].as_u64()),
        (Some(0), Some(2))
    );
    let dead: Value = get_json(nimbus.admin_url("/v1/queues/jobs/messages")).await;
    let error = dead["messages"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("function failed"), "{error}");
}

#[tokio::test]
async fn reported_failures_without_the_setting_retry_the_whole_batch() {
    let trigger = "batch_size = 2\nbatch_window_ms = 2000\nmax_concurrency = 1\nretry_backoff = { initial_ms = 600000, max_ms = 600000 }";
    let nimbus = worker_app("wholebatch", QUEUES, trigger).start().await;
    send_batch(&nimbus, "jobs", &["good", "fail"]).await;
    nimbus
        .stderr
        .wait_for("explaining the whole batch is retried", |l| {
            l.contains("report_batch_item_failures is off")
        })
        .await;
    let after = until("for the batch to be given back", || async {
        let s = stats(&nimbus, "jobs").await;
        (s["delayed"] == 2).then_some(s)
    })
    .await;
    assert_eq!(after["delayed"], 2);
}

#[tokio::test]
async fn a_function_sends_only_to_queues_it_is_granted() {
    let trigger = "batch_size = 1\nmax_concurrency = 1";
    let nimbus = worker_app("grants", QUEUES, trigger).start().await;
    send_batch(&nimbus, "jobs", &["send:out:allowed", "send:secret:denied"]).await;
    nimbus
        .stderr
        .wait_for("with the allowed send", |l| {
            l.contains("sent ") && l.contains(" to out")
        })
        .await;
    let denied = nimbus
        .stderr
        .wait_for("with the denied send", |l| {
            l.contains("send to secret failed")
        })
        .await;
    assert!(
        denied.contains("AccessDenied(\"queue:secret:send\")"),
        "{denied}"
    );
    let audit = nimbus
        .stderr
        .wait_for("with the audit line", |l| l.contains("nimbus::audit"))
        .await;
    assert!(
        audit.contains("function=worker") && audit.contains("grant=queue:secret:send"),
        "{audit}"
    );
    assert_eq!(stats(&nimbus, "out").await["visible"], 1);
    assert_eq!(stats(&nimbus, "secret").await["visible"], 0);
}

/// `validate` and `up` refuse it by the same rule, with the same words;
/// `validate` without compiling anything.
#[tokio::test]
async fn an_http_function_cannot_be_a_queue_trigger_target() {
    let app = TestApp::new("mismatch")
        .function("hello", programs::HELLO, "[queue.jobs]")
        .route_kind("queue", "queue = \"jobs\"\nfunction = \"hello\"");
    let manifest = app.write();
    let output = std::process::Command::new(support::nimbus_bin())
        .args([
            "up",
            manifest.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(app.data_dir())
        .env("XDG_CONFIG_HOME", support::CONFIG_HOME)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let expected =
        "the queue trigger on `jobs` invokes function `hello`, which is an HTTP function";
    assert!(String::from_utf8_lossy(&output.stderr).contains(expected));
    let validated = std::process::Command::new(support::nimbus_bin())
        .args(["validate", manifest.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(validated.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&validated.stderr);
    assert!(stderr.contains(expected), "{stderr}");
}

#[tokio::test]
async fn direct_invocation_runs_an_event_function_and_reports_the_outcome() {
    let app = TestApp::new("invoke")
        .function("worker", programs::EVENTS, "")
        .function("hello", programs::HELLO, "");
    let nimbus = app.start().await;
    let invoke = |function: &str, data: &str| {
        let request = client()
            .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke")))
            .header("content-type", "text/plain")
            .body(data.to_owned());
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, ok) = invoke("worker", "direct").await;
    assert_eq!((status, &ok["failed"]), (200, &json!(false)), "{ok}");
    let line = nimbus
        .stderr
        .wait_for("with the event handled", |l| {
            l.contains("handled data=direct ")
        })
        .await;
    assert!(
        line.contains("attempt=1 batch=1 source=nimbus:invoke type=nimbus.invoke"),
        "{line}"
    );
    assert!(
        line.contains(ok["invocation_id"].as_str().unwrap()),
        "{line}"
    );

    let (status, failed) = invoke("worker", "fail").await;
    assert_eq!((status, &failed["failed"]), (200, &json!(true)));
    let (status, trapped) = invoke("worker", "trap").await;
    assert_eq!(status, 502);
    assert!(
        !trapped["error"].as_str().unwrap().contains("asked to trap"),
        "{trapped}"
    );
    let (status, http) = invoke("hello", "x").await;
    assert_eq!(status, 400);
    assert!(http["error"].as_str().unwrap().contains("HTTP function"));
    assert_eq!(invoke("ghost", "x").await.0, 404);

    let listed: Value = get_json(nimbus.admin_url("/v1/functions")).await;
    assert_eq!(
        listed["functions"],
        json!([{ "name": "hello", "kind": "http" }, { "name": "worker", "kind": "event" }])
    );

    let dir = tempfile::tempdir().unwrap();
    let ok = support::nimbus(
        &[
            "invoke",
            "worker",
            "--data",
            "from-cli",
            "--admin",
            nimbus.admin.as_str(),
        ],
        dir.path(),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"failed\": false"));
    let bad = support::nimbus(
        &[
            "invoke",
            "worker",
            "--data",
            "fail",
            "--admin",
            nimbus.admin.as_str(),
        ],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(1));
}

#[tokio::test]
async fn a_trigger_runs_at_most_max_concurrency_invocations_at_once() {
    let trigger = "batch_size = 1\nmax_concurrency = 2";
    let nimbus = worker_app("concurrency", QUEUES, trigger).start().await;
    send_batch(
        &nimbus,
        "jobs",
        &[
            "sleep:300",
            "sleep:300",
            "sleep:300",
            "sleep:300",
            "sleep:300",
        ],
    )
    .await;
    nimbus
        .stderr
        .wait_for_count("with every message handled", 5, |l| l.contains("woke id="))
        .await;
    // Replay the log: each `sleeping` opens an invocation, each `woke` closes one.
    let (mut running, mut most) = (0i32, 0i32);
    for line in nimbus.stderr.snapshot() {
        if line.contains("sleeping id=") {
            running += 1;
            most = most.max(running);
        } else if line.contains("woke id=") {
            running -= 1;
        }
    }
    assert_eq!(most, 2, "the trigger ran {most} invocations at once");
}
