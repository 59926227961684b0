//! `GET /metrics`: the exposition passes `promtool check metrics`, needs the
//! admin token, and its counters move as invocations succeed, fail, are
//! throttled, retried and dead-lettered; `nimbus top` shows them.

mod support;

use nimbus_test_programs as programs;
use serde_json::json;
use support::{Nimbus, TestApp, client, until};

async fn scrape(nimbus: &Nimbus) -> String {
    let response = client()
        .get(nimbus.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

/// The value of one sample, by its name and labels as rendered.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "promtool not found: install Debian's prometheus package \
             (`apt-get install prometheus`), as .ci/run does",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn counters_move_with_invocations_throttles_retries_and_dead_letters() {
    let app = TestApp::new("metrics")
        .function("hello", programs::HELLO, "")
        .function(
            "slow",
            programs::SLOW,
            "max_concurrency = 1\ntimeout_ms = 60000",
        )
        .function(
            "worker",
            programs::EVENTS,
            "[queue.jobs]\nmax_receive_count = 2\ndead_letter_queue = \"jobs-dlq\"\n[queue.jobs-dlq]\n",
        )
        .route("/hello/{name}", "hello", "")
        .route("/slow", "slow", "")
        .route_kind(
            "queue",
            "queue = \"jobs\"\nfunction = \"worker\"\nbatch_size = 1\nretry_backoff = { initial_ms = 1, multiplier = 1.0, max_ms = 1 }",
        );
    let nimbus = app.start_with(&["--node-id", "edge-7"]).await;

    // Without the token, nothing.
    let bare = reqwest::Client::new()
        .get(nimbus.admin_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);

    for name in ["a", "b"] {
        let response = client()
            .get(nimbus.url(&format!("/hello/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        client()
            .get(nimbus.url("/nowhere"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // One request holds `slow`'s only instance; the next is throttled.
    let mut first = client()
        .get(nimbus.url("/slow?after_ms=30000"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.chunk().await.unwrap().unwrap(), "start\n");
    assert_eq!(
        client()
            .get(nimbus.url("/slow"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );

    // A message that always fails: delivered twice (one retry), then moved
    // to the dead-letter queue by the next receive.
    let sent = client()
        .post(nimbus.admin_url("/v1/queues/jobs/messages"))
        .json(&json!({ "body": "fail" }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let text = until("the message to be dead-lettered", || async {
        // Gauges are read from the store before the counters are rendered, so
        // one scrape can see the move counted but not yet in the gauges.
        let text = scrape(&nimbus).await;
        let counted =
            sample(&text, "nimbus_dead_lettered_messages_total{queue=\"jobs\"}") == Some(1.0);
        let in_dlq = sample(
            &text,
            "nimbus_dead_letter_queue_messages{queue=\"jobs-dlq\"}",
        ) == Some(1.0);
        (counted && in_dlq).then_some(text)
    })
    .await;

    promtool_check(&text);
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    };
    expect(
        "nimbus_invocations_total{function=\"hello\",outcome=\"success\"}",
        2.0,
    );
    expect(
        "nimbus_invocations_total{function=\"slow\",outcome=\"throttled\"}",
        1.0,
    );
    expect("nimbus_concurrent_executions{function=\"slow\"}", 1.0);
    expect(
        "nimbus_http_requests_total{route=\"/hello/{name}\",method=\"GET\",status=\"200\"}",
        2.0,
    );
    expect(
        "nimbus_http_requests_total{route=\"\",method=\"GET\",status=\"404\"}",
        1.0,
    );
    expect(
        "nimbus_http_requests_total{route=\"/slow\",method=\"GET\",status=\"429\"}",
        1.0,
    );
    expect(
        "nimbus_invocation_duration_seconds_count{function=\"hello\"}",
        2.0,
    );
    expect("nimbus_instance_starts_total{function=\"hello\"}", 2.0);
    expect(
        "nimbus_invocations_total{function=\"worker\",outcome=\"success\"}",
        2.0,
    );
    expect(
        "nimbus_event_retries_total{function=\"worker\",source=\"queue:jobs\"}",
        2.0,
    );
    expect(
        "nimbus_function_loads_total{function=\"hello\",artifact=\"compiled\"}",
        1.0,
    );
    expect("nimbus_dead_letter_queue_messages{queue=\"jobs-dlq\"}", 1.0);
    expect(
        "nimbus_queue_messages{queue=\"jobs-dlq\",state=\"visible\"}",
        1.0,
    );
    expect(
        "nimbus_queue_messages{queue=\"jobs\",state=\"visible\"}",
        0.0,
    );
    assert!(sample(&text, "nimbus_store_commits_total").unwrap() >= 1.0);
    expect("nimbus_node_info{node=\"edge-7\"}", 1.0);
    assert!(sample(&text, "nimbus_store_commit_batch_size_count").unwrap() >= 1.0);
    // Every acknowledged write waited for a sync of the store's log.
    assert!(sample(&text, "nimbus_store_log_sync_duration_seconds_count").unwrap() >= 1.0);

    // `nimbus top` shows the same numbers, one row per function and queue.
    let output = support::nimbus(
        &[
            "top",
            "--once",
            "--interval-ms",
            "100",
            "--admin",
            &nimbus.admin,
        ],
        app.dir.path(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frame = String::from_utf8(output.stdout).unwrap();
    let row = |name: &str| -> Vec<String> {
        frame
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{frame}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // FUNCTION INVOKED INV/S ERR/S THROTTLE/S AVG-MS RUNNING
    assert_eq!(row("hello")[1], "2", "{frame}");
    assert_eq!(row("slow")[6], "1", "{frame}");
    // QUEUE VISIBLE IN-FLIGHT DELAYED OLDEST-S
    assert_eq!(row("jobs-dlq")[1], "1", "{frame}");
    drop(first);
}
