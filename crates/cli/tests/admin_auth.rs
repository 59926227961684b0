//! The admin token: every `/v1` route refuses a missing or wrong token (the
//! routes come from the OpenAPI document, so a new one cannot be forgotten),
//! and a token is generated into the data directory when none is given.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt as _;
use support::{Nimbus, TestApp, get_json};

fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::PATIENCE)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_v1_route_refuses_a_missing_or_wrong_token() {
    let app = TestApp::new("auth").function("worker", programs::EVENTS, "[queue.jobs]");
    let nimbus = app.start().await;
    let doc: Value = get_json(nimbus.admin_url("/v1/openapi.json")).await;
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1") {
            continue;
        }
        let concrete = path
            .replace("{queue}", "jobs")
            .replace("{receipt}", "r")
            .replace("{message_id}", "m")
            .replace("{name}", "worker")
            .replace("{id}", "k")
            .replace("{bucket}", "files")
            .replace("{key}", "k");
        for method in methods.as_object().unwrap().keys() {
            for token in [None, Some("Bearer wrong-token"), Some("Basic dGVzdA==")] {
                let mut request = bare_client().request(
                    method.to_uppercase().parse().unwrap(),
                    nimbus.admin_url(&concrete),
                );
                if let Some(value) = token {
                    request = request.header("authorization", value);
                }
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
                assert!(
                    response.headers().contains_key("www-authenticate"),
                    "{method} {path}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 16, "only {checked} routes checked");
    // Nothing was done by the refused calls.
    let stats: Value = get_json(nimbus.admin_url("/v1/queues/jobs")).await;
    assert_eq!(stats["visible"], 0);
    // Health and readiness stay open for supervisors.
    assert_eq!(
        bare_client()
            .get(nimbus.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        bare_client()
            .get(nimbus.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_token_is_generated_once_into_the_data_directory() {
    let app = TestApp::new("gentoken").function("hello", programs::HELLO, "");
    let manifest = app.write();
    let start = || {
        let mut command = tokio::process::Command::new(support::nimbus_bin());
        command
            .arg("up")
            .arg(&manifest)
            .arg("--data-dir")
            .arg(app.data_dir());
        command.env_remove("NIMBUS_ADMIN_TOKEN");
        Nimbus::spawn(command)
    };
    let first = start().await;
    let path = app.data_dir().join("admin-token");
    let token = std::fs::read_to_string(&path).unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let with = |nimbus: &Nimbus| {
        bare_client()
            .get(nimbus.admin_url("/v1/queues"))
            .bearer_auth(token.clone())
            .send()
    };
    assert_eq!(with(&first).await.unwrap().status(), 200);
    drop(first);
    let second = start().await;
    assert_eq!(
        with(&second).await.unwrap().status(),
        200,
        "the token changed across restarts"
    );
}

#[test]
fn a_short_admin_token_is_refused() {
    let app = TestApp::new("short").function("hello", programs::HELLO, "");
    let manifest = app.write();
    let output = support::nimbus(
        &["up", manifest.to_str().unwrap(), "--admin-token", "short"],
        app.dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 16 characters"));
}

#[test]
fn both_listeners_default_to_loopback() {
    let app = TestApp::new("defaults").function("hello", programs::HELLO, "");
    let output = support::nimbus(&["up", "--help"], app.dir.path());
    let help = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = help.lines().collect();
    for flag in ["--listen", "--admin-listen"] {
        let start = lines
            .iter()
            .position(|l| l.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} is not in:\n{help}"));
        let default = lines[start..]
            .iter()
            .find(|l| l.contains("[default"))
            .unwrap();
        assert!(
            default.contains("[default: 127.0.0.1:"),
            "{flag}: {default}"
        );
    }
}
