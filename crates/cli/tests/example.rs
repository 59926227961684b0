//! README's examples keep working: each builds with `nimbus build` and does
//! what README says through the real server.

mod support;

use std::path::PathBuf;
use support::{Nimbus, client, get_json, nimbus_bin};

/// Runs `nimbus build` on `examples/NAME` and returns its manifest's path.
fn build_example(name: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../examples/{name}/nimbus.toml"));
    let mut build = std::process::Command::new(nimbus_bin());
    build.arg("build").arg(&manifest);
    // The example is built as a user would, not with this test build's flags.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let output = build.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    manifest
}

#[tokio::test]
async fn the_hello_example_builds_and_answers() {
    let manifest = build_example("hello");

    let data = tempfile::tempdir().unwrap();
    let nimbus = Nimbus::start(&manifest, data.path(), &[]).await;
    let response = client()
        .get(nimbus.url("/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
    let wrong_method = client()
        .post(nimbus.url("/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
}

#[tokio::test]
async fn the_orders_example_chains_http_a_queue_a_worker_and_a_dlq() {
    let manifest = build_example("orders");

    let data = tempfile::tempdir().unwrap();
    let nimbus = Nimbus::start(&manifest, data.path(), &[]).await;
    let accepted = client()
        .post(nimbus.url("/orders"))
        .body(r#"{"item":"tea"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let order: serde_json::Value = accepted.json().await.unwrap();
    let id = order["order_id"].as_str().unwrap().to_owned();
    nimbus
        .stderr
        .wait_for("with the order fulfilled", |l| {
            l.contains(&format!("fulfilled order {id}"))
        })
        .await;

    let poison = client()
        .post(nimbus.url("/orders"))
        .body("poison pill")
        .send()
        .await
        .unwrap();
    assert_eq!(poison.status(), 202);
    nimbus
        .stderr
        .wait_for("with the third attempt", |l| l.contains("(attempt 3)"))
        .await;
    let depth = support::until("for the poison order in the DLQ", || async {
        let dlqs: serde_json::Value = get_json(nimbus.admin_url("/v1/dead-letter-queues")).await;
        let depth = dlqs["dead_letter_queues"][0]["depth"].as_u64().unwrap_or(0);
        (depth == 1).then_some(depth)
    })
    .await;
    assert_eq!(depth, 1);
    assert_eq!(
        client()
            .post(nimbus.url("/orders"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
}
