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

#[tokio::test]
async fn the_shop_example_chains_a_table_its_stream_a_bucket_an_object_trigger_and_a_schedule() {
    run_the_shop_chain(&[]).await;
}

#[tokio::test]
async fn the_shop_example_runs_end_to_end_on_postgres() {
    let store = nimbus_test_postgres::server().fresh_url();
    run_the_shop_chain(&["--store", &store]).await;
}

/// The shop's whole chain, on the store `store_args` choose.
async fn run_the_shop_chain(store_args: &[&str]) {
    let manifest = build_example("shop");
    let data = tempfile::tempdir().unwrap();
    let args: Vec<&str> = ["--test-clock"].iter().chain(store_args).copied().collect();
    let nimbus = Nimbus::start(&manifest, data.path(), &args).await;

    // The API writes the order to the table.
    let placed = client()
        .post(nimbus.url("/orders"))
        .body(r#"{"customer": "ann", "item": "tea", "amount": 4}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let placed: serde_json::Value = placed.json().await.unwrap();
    let (day, id) = (
        placed["day"].as_str().unwrap().to_owned(),
        placed["id"].as_str().unwrap().to_owned(),
    );
    let bad = client()
        .post(nimbus.url("/orders"))
        .body(r#"{"customer": "ann"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Its change record makes a receipt in the bucket, whose upload marks
    // the order receipted.
    let order_url = nimbus.url(&format!("/orders/{day}/{id}"));
    let order = support::until("for the order to be receipted", || async {
        let order: serde_json::Value = client()
            .get(&order_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (order["status"] == "receipted").then_some(order)
    })
    .await;
    let receipt_key = format!("receipts/{day}/{id}.txt");
    assert_eq!(order["receipt"], receipt_key.as_str());
    let receipt =
        support::get_text(nimbus.admin_url(&format!("/v1/buckets/receipts/objects/{receipt_key}")))
            .await;
    assert!(
        receipt.contains("Customer: ann") && receipt.contains("Amount: 4"),
        "{receipt}"
    );

    // The nightly summary runs at 00:05 UTC: move the clock there.
    let clock = |advance_ms: u64| {
        let url = nimbus.admin_url("/v1/test/clock");
        async move {
            let answer: serde_json::Value = client()
                .post(url)
                .json(&serde_json::json!({ "advance_ms": advance_ms }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["now_ms"].as_u64().unwrap()
        }
    };
    let now = clock(0).await;
    let next_run = (now / 86_400_000 + 1) * 86_400_000 + 5 * 60_000;
    clock(next_run - now + 1000).await;
    let summary_url = nimbus.admin_url(&format!(
        "/v1/buckets/receipts/objects/summaries/{day}.json"
    ));
    let summary = support::until("for the nightly summary", || async {
        let response = client().get(&summary_url).send().await.ok()?;
        if response.status() != 200 {
            return None;
        }
        response.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!(summary["orders"], 1);
    assert_eq!(summary["total"], 4);
    let schedules = get_json(nimbus.admin_url("/v1/schedules")).await;
    assert!(
        schedules.to_string().contains("nightly-summary"),
        "{schedules}"
    );
}
