//! Invocation history and function output through the real server: `nimbus
//! logs --follow` shows a printed line tagged with its invocation id, records
//! are listed and filtered (a failure keeps its error), captured output stays
//! within its bound and is marked truncated, and records past the retention
//! are removed.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{
    ADMIN_TOKEN, CONFIG_HOME, Nimbus, TestApp, client, get_json, invocation_id, invocation_record,
    nimbus_bin, until,
};

#[tokio::test]
async fn logs_follow_shows_a_printed_line_tagged_with_its_invocation_id() {
    let app = TestApp::new("history-follow")
        .function("stdio", programs::STDIO, "")
        .route("/stdio", "stdio", "");
    let nimbus = app.start().await;
    let mut follower = tokio::process::Command::new(nimbus_bin())
        .args(["logs", "stdio", "--follow", "--admin", &nimbus.admin])
        .env("NIMBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("XDG_CONFIG_HOME", CONFIG_HOME)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = support::collect(follower.stdout.take().unwrap());
    let stderr = support::collect(follower.stderr.take().unwrap());
    // The server's first line says the follower is subscribed.
    stderr
        .wait_for("the follower to be subscribed", |l| {
            l.contains("following the output of `stdio`")
        })
        .await;

    let response = reqwest::get(nimbus.url("/stdio?lines=1")).await.unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    let expected = format!("{id} stdout stdout line 0 of 1");
    stdout
        .wait_for("the printed line, tagged", |l| l == expected)
        .await;
    stdout
        .wait_for("the stderr line, tagged", |l| {
            l == format!("{id} stderr stderr says hi")
        })
        .await;
    follower.kill().await.unwrap();

    // Without --follow: the lines of recent records.
    invocation_record(&nimbus, &id).await;
    let output = support::nimbus(&["logs", "stdio", "--admin", &nimbus.admin], app.dir.path());
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.lines().any(|l| l == expected), "{text}");
}

#[tokio::test]
async fn invocations_are_listed_and_filtered_and_a_failure_keeps_its_error() {
    let app = TestApp::new("history-list")
        .function("worker", programs::EVENTS, "")
        .function("stdio", programs::STDIO, "")
        .route("/stdio/{name}", "stdio", "");
    let nimbus = app.start().await;
    let invoke = |data: &'static str| {
        let url = nimbus.admin_url("/v1/functions/worker/invoke");
        async move {
            let response = client()
                .post(url)
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(data)
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            body["invocation_id"].as_str().unwrap().to_owned()
        }
    };
    let ok = invoke("fine").await;
    let failed = invoke("error").await;
    let response = reqwest::get(nimbus.url("/stdio/x")).await.unwrap();
    let http = invocation_id(&response);

    let failure = invocation_record(&nimbus, &failed).await;
    assert_eq!(failure["function"], "worker");
    assert_eq!(failure["outcome"], "error");
    assert_eq!(failure["trigger"], "invoke");
    assert_eq!(failure["attempt"], 1);
    assert_eq!(failure["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let error = failure["error"].as_str().unwrap();
    assert!(error.contains("asked to fail the whole batch"), "{error}");
    let logs = failure["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["stream"] == "stdout"
            && l["text"]
                .as_str()
                .unwrap()
                .starts_with("handled data=error")),
        "{failure}"
    );
    let served = invocation_record(&nimbus, &http).await;
    assert_eq!(served["trigger"], "http");
    assert_eq!(served["source"], "/stdio/{name}");
    assert_eq!(served["outcome"], "success");
    // A request without trace context starts a trace; its id is recorded.
    let trace_id = served["trace_id"].as_str().unwrap();
    assert!(
        trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{trace_id}"
    );
    invocation_record(&nimbus, &ok).await;

    // The CLI: --failed finds the failure only; a function filter; newest first.
    let list = |args: &[&str]| {
        let mut all = vec!["invocations", "-o", "json"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &nimbus.admin]);
        let output = support::nimbus(&all, app.dir.path());
        assert!(output.status.success(), "{output:?}");
        let page: Value = serde_json::from_slice(&output.stdout).unwrap();
        page["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&["worker", "--failed"]), [failed.as_str()]);
    assert_eq!(list(&["worker"]), [failed.as_str(), ok.as_str()]);
    assert_eq!(list(&["--limit", "1"]), [http.as_str()]);

    // Bad parameters are a 400 with a JSON error.
    for query in [
        "outcome=bogus",
        "outcome=error,",
        "limit=0",
        "limit=1001",
        "nope=1",
        "limit=x",
    ] {
        let response = client()
            .get(nimbus.admin_url(&format!("/v1/invocations?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    let unknown = client()
        .get(nimbus.admin_url("/v1/functions/ghost/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn captured_output_stays_within_its_bound_and_is_marked_truncated() {
    let app = TestApp::new("history-bound")
        .function("stdio", programs::STDIO, "max_log_bytes = 1024")
        .route("/stdio", "stdio", "");
    let nimbus = app.start().await;
    let small = reqwest::get(nimbus.url("/stdio?lines=2")).await.unwrap();
    let small = invocation_record(&nimbus, &invocation_id(&small)).await;
    assert_eq!(small["logs_truncated"], false);
    assert_eq!(small["logs"].as_array().unwrap().len(), 3);

    let large = reqwest::get(nimbus.url("/stdio?lines=500")).await.unwrap();
    assert_eq!(large.status(), 200);
    let large = invocation_record(&nimbus, &invocation_id(&large)).await;
    assert_eq!(large["logs_truncated"], true);
    let logs = large["logs"].as_array().unwrap();
    let bytes: usize = logs
        .iter()
        .map(|l| l["text"].as_str().unwrap().len() + 1)
        .sum();
    assert!(bytes <= 1024, "{bytes} bytes kept");
    assert!(logs.len() > 10, "{} lines kept", logs.len());
    assert_eq!(logs[0]["text"], "stdout line 0 of 500");
}

#[tokio::test]
async fn records_past_the_retention_are_removed() {
    let app = TestApp::new("history-retention")
        .function("stdio", programs::STDIO, "")
        .route("/stdio", "stdio", "");
    let nimbus = app.start_with(&["--history-retention-s", "1"]).await;
    let response = reqwest::get(nimbus.url("/stdio")).await.unwrap();
    let id = invocation_id(&response);
    invocation_record(&nimbus, &id).await;
    let url = nimbus.admin_url(&format!("/v1/invocations/{id}"));
    until("for the record to pass its retention", || async {
        let status = client().get(&url).send().await.unwrap().status();
        (status == 404).then_some(())
    })
    .await;
    let page = get_json(nimbus.admin_url("/v1/invocations")).await;
    assert_eq!(page["invocations"], serde_json::json!([]));
}

#[tokio::test]
async fn past_the_record_cap_the_oldest_records_go() {
    let app = TestApp::new("history-cap")
        .function("stdio", programs::STDIO, "")
        .route("/stdio", "stdio", "");
    let manifest = app.write();
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &[]).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let response = reqwest::get(nimbus.url("/stdio")).await.unwrap();
        ids.push(invocation_id(&response));
    }
    for id in &ids {
        invocation_record(&nimbus, id).await;
    }
    nimbus.terminate();
    let mut nimbus = nimbus;
    assert_eq!(nimbus.exit_code().await, Some(0));
    // The sweep runs as the node starts: down to the two newest.
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &["--history-max-records", "2"]).await;
    let kept = until("the records past the cap to go", || async {
        let page = get_json(nimbus.admin_url("/v1/invocations")).await;
        let kept: Vec<String> = page["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        (kept.len() == 2).then_some(kept)
    })
    .await;
    assert_eq!(kept, [ids[4].clone(), ids[3].clone()]);
}

#[tokio::test]
async fn a_throttled_request_leaves_a_throttled_record() {
    let app = TestApp::new("history-throttle")
        .function(
            "slow",
            programs::SLOW,
            "max_concurrency = 1\ntimeout_ms = 60000",
        )
        .route("/slow", "slow", "");
    let nimbus = app.start().await;
    // One request holds `slow`'s only instance; the next is throttled.
    let mut first = client()
        .get(nimbus.url("/slow?after_ms=30000"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.chunk().await.unwrap().unwrap(), "start\n");
    let refused = client().get(nimbus.url("/slow")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let url = nimbus.admin_url("/v1/invocations?function=slow&outcome=throttled");
    let throttled = until("for the throttled record", || async {
        let page = get_json(&url).await;
        page["invocations"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(throttled["trigger"], "http");
    assert_eq!(throttled["source"], "/slow");
    assert_eq!(throttled["duration_ms"], 0);
    assert_eq!(throttled["error"], "function is at its concurrency limit");
}
