//! README's first command runs `examples/hello`; this keeps it working:
//! the example builds with `nimbus build` and answers through the gateway.

mod support;

use std::path::PathBuf;
use support::{Nimbus, client, nimbus_bin};

#[tokio::test]
async fn the_hello_example_builds_and_answers() {
    let manifest =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello/nimbus.toml");
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
