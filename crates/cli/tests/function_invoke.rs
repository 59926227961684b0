//! Functions invoking functions through `nimbus:function/functions`: only
//! what `function:NAME:invoke` grants, synchronously (with the callee's
//! outcome) or durably later, and call chains bounded in depth.

mod support;

use nimbus_test_programs as programs;
use support::{Nimbus, TestApp, client};

/// `caller` may invoke `callee` and itself; `other` it may not.
fn app(name: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "caller",
            programs::EVENTS,
            "allow = [\"function:callee:invoke\", \"function:caller:invoke\"]",
        )
        .function("callee", programs::EVENTS, "")
        .function("other", programs::EVENTS, "")
}

/// Invokes `caller` directly with `data` and waits for it to finish.
async fn invoke_caller(nimbus: &Nimbus, data: &str) {
    let response = client()
        .post(nimbus.admin_url("/v1/functions/caller/invoke"))
        .body(data.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{data}");
}

#[tokio::test]
async fn a_granted_function_is_invoked_and_its_outcome_comes_back() {
    let nimbus = app("calls").start().await;
    invoke_caller(&nimbus, "invoke:callee:hello").await;
    let handled = nimbus
        .stderr
        .wait_for("the callee's event", |l| l.contains("handled data=hello "))
        .await;
    assert!(
        handled.contains("source=nimbus:function/caller") && handled.contains("type=nimbus.invoke"),
        "{handled}"
    );
    nimbus
        .stderr
        .wait_for("the caller's success", |l| l.contains("invoked callee"))
        .await;

    // The callee's failure is the caller's error, naming the invocation.
    invoke_caller(&nimbus, "invoke:callee:fail").await;
    let failed = nimbus
        .stderr
        .wait_for("the caller's error", |l| {
            l.contains("invoke of callee failed")
        })
        .await;
    assert!(
        failed.contains("Failed(") && failed.contains("reported the event as failed"),
        "{failed}"
    );
    invoke_caller(&nimbus, "invoke:callee:trap").await;
    nimbus
        .stderr
        .wait_for("the trap reported to the caller", |l| {
            l.contains("invoke of callee failed") && l.contains("details in the log")
        })
        .await;
}

#[tokio::test]
async fn an_ungranted_function_is_denied_and_audited_and_never_runs() {
    let nimbus = app("denied").start().await;
    invoke_caller(&nimbus, "invoke:other:secret-work").await;
    let denied = nimbus
        .stderr
        .wait_for("the denial", |l| l.contains("invoke of other failed"))
        .await;
    assert!(
        denied.contains("AccessDenied(\"function:other:invoke\")"),
        "{denied}"
    );
    let audit = nimbus
        .stderr
        .wait_for("the audit line", |l| l.contains("nimbus::audit"))
        .await;
    assert!(
        audit.contains("function=caller") && audit.contains("grant=function:other:invoke"),
        "{audit}"
    );
    invoke_caller(&nimbus, "invoke-async:other:later").await;
    nimbus
        .stderr
        .wait_for("the async denial", |l| {
            l.contains("async invoke of other failed") && l.contains("AccessDenied")
        })
        .await;
    // Neither reached `other` (its events would be printed as handled).
    let text = nimbus.stderr.text();
    assert!(!text.contains("handled data=secret-work"), "{text}");
    assert!(!text.contains("handled data=later"), "{text}");
}

#[tokio::test]
async fn an_async_invocation_is_queued_durably_and_runs_later() {
    let nimbus = app("later").start().await;
    invoke_caller(&nimbus, "invoke-async:callee:afterwards").await;
    let queued = nimbus
        .stderr
        .wait_for("the event id", |l| {
            l.contains("queued ") && l.contains(" for callee")
        })
        .await;
    let handled = nimbus
        .stderr
        .wait_for("the callee running", |l| {
            l.contains("handled data=afterwards ")
        })
        .await;
    let event_id = queued
        .split("queued ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(
        handled.contains(&format!("id={event_id}")),
        "{handled}\n{queued}"
    );
}

#[tokio::test]
async fn call_chains_stop_at_the_depth_limit() {
    let nimbus = app("chain").start().await;
    // caller -> caller -> ... ten deep: the ninth call is refused.
    let data = format!("{}end", "invoke:caller:".repeat(10));
    invoke_caller(&nimbus, &data).await;
    let refused = nimbus
        .stderr
        .wait_for("the refused call", |l| {
            l.contains("invoke of caller failed") && l.contains("Invalid(")
        })
        .await;
    assert!(refused.contains("limited to 8"), "{refused}");
    assert!(!nimbus.stderr.text().contains("handled data=end "));
}

#[tokio::test]
async fn a_grant_to_invoke_an_http_function_stops_the_app_at_start() {
    let app = TestApp::new("http-target")
        .function(
            "caller",
            programs::EVENTS,
            "allow = [\"function:hello:invoke\"]",
        )
        .function("hello", programs::HELLO, "");
    let output = std::process::Command::new(support::nimbus_bin())
        .arg("up")
        .arg(app.write())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`hello`, which is an HTTP function"),
        "{stderr}"
    );
}
