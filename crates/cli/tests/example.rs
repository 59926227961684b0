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

/// An OTLP/HTTP receiver on loopback: collects every span it is sent.
async fn otlp_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = spans.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                let body = loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the exporter closed mid-request");
                    data.extend_from_slice(&buf[..n]);
                    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                    assert!(head.starts_with("post /v1/traces "), "{head}");
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    if data.len() >= end + 4 + length {
                        break data[end + 4..end + 4 + length].to_vec();
                    }
                };
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                for resource in request["resourceSpans"].as_array().unwrap() {
                    for scope in resource["scopeSpans"].as_array().unwrap() {
                        sink.lock()
                            .unwrap()
                            .extend(scope["spans"].as_array().unwrap().iter().cloned());
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (endpoint, spans)
}

#[tokio::test]
async fn one_trace_follows_an_order_from_http_through_the_queue_to_the_worker() {
    let manifest = build_example("orders");
    let (endpoint, spans) = otlp_receiver().await;
    let data = tempfile::tempdir().unwrap();
    let nimbus = Nimbus::start(&manifest, data.path(), &["--otlp-endpoint", &endpoint]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let accepted = client()
        .post(nimbus.url("/orders"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(r#"{"item":"tea"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);

    let by_name = |name: &str| -> Option<serde_json::Value> {
        spans
            .lock()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name && s["traceId"] == trace_id)
            .cloned()
    };
    let worker = support::until("the worker's span to be exported", || async {
        by_name("invoke worker")
    })
    .await;
    let gateway = by_name("POST /orders").expect("the gateway's span");
    let api = by_name("invoke api").expect("the api invocation's span");
    let send = by_name("send orders").expect("the queue send's span");
    // Each hop is the child of the one before, all in the caller's trace.
    assert_eq!(gateway["parentSpanId"], caller_span);
    assert_eq!(gateway["kind"], 2, "server");
    assert_eq!(api["parentSpanId"], gateway["spanId"]);
    assert_eq!(send["parentSpanId"], api["spanId"]);
    assert_eq!(send["kind"], 4, "producer");
    assert_eq!(worker["parentSpanId"], send["spanId"]);
    for span in [&gateway, &api, &send, &worker] {
        assert_eq!(span["status"]["code"], 1, "{span}");
        let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && end >= start, "{span}");
    }
}
