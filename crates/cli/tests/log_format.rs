//! `--log-format json` (or `NIMBUS_LOG_FORMAT=json`): every log line is one
//! JSON object, and lines about an invocation carry its id as a field.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{ADMIN_TOKEN, Nimbus, TestApp, client, invocation_id};
use tokio::process::Command;

#[tokio::test]
async fn json_logs_are_one_object_per_line_tagged_with_the_invocation() {
    let app = TestApp::new("json-logs")
        .function("hello", programs::HELLO, "")
        .route("/hello/{name}", "hello", "");
    let mut command = Command::new(support::nimbus_bin());
    command
        .arg("up")
        .arg(app.write())
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(["--admin-token", ADMIN_TOKEN])
        .env("NIMBUS_LOG_FORMAT", "json")
        // "invocation finished" is a debug line (the history record holds
        // the same); the function's own output is logged at info.
        .env("NIMBUS_LOG", "info,nimbus_engine=debug");
    let nimbus = Nimbus::spawn(command).await;
    let response = client()
        .get(nimbus.url("/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    // The function's own output and the outcome line, both under its id.
    for what in ["hello handled /hello/world", "invocation finished"] {
        let line = nimbus
            .stderr
            .wait_for(what, |l| l.contains(what) && l.contains(&id))
            .await;
        let object: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            object["invocation_id"]
                .as_str()
                .map(|s| s.trim_matches('"')),
            Some(id.as_str()),
            "{line}"
        );
        assert_eq!(object["function"], "hello", "{line}");
        assert!(object["message"].as_str().unwrap().contains(what), "{line}");
        assert!(
            object["level"].is_string() && object["timestamp"].is_string(),
            "{line}"
        );
    }
    // Every line the server wrote is JSON.
    for line in nimbus.stderr.snapshot() {
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}
