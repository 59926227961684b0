//! The server's life: health and readiness, graceful shutdown within a bound,
//! and the compiled-artifact cache across restarts.

mod support;

use nimbus_test_programs as programs;
use std::path::Path;
use support::{Nimbus, TestApp, client};

#[tokio::test]
async fn the_admin_listener_reports_health_and_readiness() {
    let app = TestApp::new("admin")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start().await;
    let health = client()
        .get(nimbus.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let ready = client()
        .get(nimbus.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let unknown = client()
        .get(nimbus.admin_url("/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // Routes live on the gateway only.
    assert_eq!(
        client()
            .get(nimbus.admin_url("/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_refuses_new_ones() {
    let app = TestApp::new("drain")
        .function("slow", programs::SLOW, "timeout_ms = 60000")
        .route("/slow", "slow", "");
    let mut nimbus = app.start().await;

    let mut in_flight = client()
        .get(nimbus.url("/slow?after_ms=3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(in_flight.chunk().await.unwrap().unwrap(), "start\n");

    nimbus.terminate();
    nimbus
        .stderr
        .wait_for("closing the gateway's listener", |l| {
            l.contains("stopped accepting connections")
                && l.contains(nimbus.gateway.trim_start_matches("http://"))
        })
        .await;
    // While draining: not ready, and the gateway accepts no new connections.
    let ready = client()
        .get(nimbus.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let refused = client().get(nimbus.url("/slow")).send().await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during shutdown: {refused:?}"
    );

    // The request that was already running completes in full.
    assert_eq!(in_flight.chunk().await.unwrap().unwrap(), "done\n");
    assert!(in_flight.chunk().await.unwrap().is_none());
    assert_eq!(nimbus.exit_code().await, Some(0));
}

#[tokio::test]
async fn shutdown_stops_waiting_after_the_grace_period() {
    let app = TestApp::new("grace")
        .function("slow", programs::SLOW, "timeout_ms = 900000")
        .route("/slow", "slow", "");
    let mut nimbus = app.start_with(&["--shutdown-grace-ms", "200"]).await;
    let mut stuck = client()
        .get(nimbus.url("/slow?after_ms=600000"))
        .send()
        .await
        .unwrap();
    assert_eq!(stuck.chunk().await.unwrap().unwrap(), "start\n");

    nimbus.terminate();
    // The request would run for ten minutes; the server exits long before.
    assert_eq!(nimbus.exit_code().await, Some(0));
    nimbus
        .stderr
        .wait_for("saying requests were cut off", |l| {
            l.contains("grace period elapsed")
        })
        .await;
    assert!(
        stuck.chunk().await.is_err(),
        "the cut-off response should end in an error"
    );
}

fn artifacts(data_dir: &Path) -> Vec<(String, std::time::SystemTime)> {
    let mut found: Vec<_> = std::fs::read_dir(data_dir.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

async fn start_and_report(app: &TestApp) -> (Nimbus, String) {
    let nimbus = app.start().await;
    let line = nimbus
        .stdout
        .wait_for("about the function", |l| l.starts_with("function fn "))
        .await;
    let response = client().get(nimbus.url("/f")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    (nimbus, line)
}

async fn stop(mut nimbus: Nimbus) {
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));
}

#[tokio::test]
async fn compiled_artifacts_are_reused_until_the_component_changes() {
    let app = TestApp::new("cache")
        .function("fn", "fn.wasm", "")
        .route("/f", "fn", "");
    let component = app.dir.path().join("fn.wasm");
    std::fs::copy(programs::HELLO, &component).unwrap();

    let (nimbus, line) = start_and_report(&app).await;
    assert_eq!(line, "function fn (HTTP): compiled");
    stop(nimbus).await;
    let first = artifacts(&app.data_dir());
    assert_eq!(first.len(), 1);

    // Unchanged component: loaded, never recompiled or rewritten.
    let (nimbus, line) = start_and_report(&app).await;
    assert_eq!(line, "function fn (HTTP): loaded cached artifact");
    stop(nimbus).await;
    assert_eq!(artifacts(&app.data_dir()), first);

    // A changed component compiles anew, beside the old artifact.
    std::fs::copy(programs::ECHO, &component).unwrap();
    let (nimbus, line) = start_and_report(&app).await;
    assert_eq!(line, "function fn (HTTP): compiled");
    stop(nimbus).await;
    assert_eq!(artifacts(&app.data_dir()).len(), 2);
}

#[tokio::test]
async fn a_corrupted_artifact_is_recompiled_not_trusted() {
    let app = TestApp::new("corrupt")
        .function("fn", programs::HELLO, "")
        .route("/f", "fn", "");
    let (nimbus, _) = start_and_report(&app).await;
    stop(nimbus).await;
    let (name, _) = artifacts(&app.data_dir()).remove(0);
    let path = app.data_dir().join("artifacts").join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, bytes).unwrap();

    let (nimbus, line) = start_and_report(&app).await;
    assert_eq!(line, "function fn (HTTP): compiled");
    nimbus
        .stderr
        .wait_for("warning about the bad artifact", |l| {
            l.contains("discarding unusable cached artifact")
        })
        .await;
}

#[tokio::test]
async fn sigint_shuts_down_cleanly_too() {
    let app = TestApp::new("sigint")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let mut nimbus = app.start().await;
    let pid = nimbus.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(nimbus.exit_code().await, Some(0));
    nimbus
        .stderr
        .wait_for("acknowledging SIGINT", |l| l.contains("received SIGINT"))
        .await;
}

#[tokio::test]
async fn the_default_data_directory_is_per_user_not_inside_the_app() {
    let app = TestApp::new("defaultdir")
        .function("fn", programs::HELLO, "")
        .route("/f", "fn", "");
    let manifest = app.write();
    let home = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    for (xdg_data_home, expected) in [
        (None, home.path().join(".local/share/nimbus/defaultdir")),
        (Some(xdg.path()), xdg.path().join("nimbus/defaultdir")),
    ] {
        let mut command = tokio::process::Command::new(support::nimbus_bin());
        command.arg("up").arg(&manifest).env("HOME", home.path());
        match xdg_data_home {
            Some(dir) => command.env("XDG_DATA_HOME", dir),
            None => command.env_remove("XDG_DATA_HOME"),
        };
        let nimbus = Nimbus::spawn(command).await;
        assert_eq!(
            client()
                .get(nimbus.url("/f"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            artifacts(&expected).len(),
            1,
            "no artifact under {}",
            expected.display()
        );
        stop(nimbus).await;
    }
    // Nothing is written next to the manifest, where a cloned repository
    // could have planted compiled code.
    assert!(!app.dir.path().join(".nimbus").exists());
}

#[tokio::test]
async fn shutdown_stops_a_guest_that_is_still_computing_after_the_grace_period() {
    let app = TestApp::new("stuck")
        .function("spin", programs::SPIN, "timeout_ms = 900000")
        .route("/spin", "spin", "");
    let mut nimbus = app.start_with(&["--shutdown-grace-ms", "200"]).await;
    let request = tokio::spawn(client().get(nimbus.url("/spin")).send());
    nimbus
        .stderr
        .wait_for("with the guest running", |l| {
            l.contains("invocation started")
        })
        .await;
    nimbus.terminate();
    // The guest would spin for fifteen minutes; the server still exits.
    assert_eq!(nimbus.exit_code().await, Some(0));
    assert!(request.await.unwrap().is_err());
}
