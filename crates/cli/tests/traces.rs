//! Traces kept with the invocation history, without an OTLP collector:
//! each record keeps its invocation's span and its host calls' spans, and
//! `/v1/traces/{id}` joins the records of one trace into a tree across
//! functions (a call to another function, a message to a queue consumed by
//! a third), continuing the caller's `traceparent`; `nimbus trace` prints
//! that tree.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{Nimbus, TestApp, client, get_json, invocation_id, until};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// `caller` calls `callee`, which sends to `jobs`, which `worker` consumes.
fn app() -> TestApp {
    TestApp::new("traces")
        .function(
            "caller",
            programs::EVENTS,
            "allow = [\"function:callee:invoke\"]",
        )
        .function(
            "callee",
            programs::EVENTS,
            "allow = [\"queue:jobs:send\"]\n\n[queue.jobs]",
        )
        .function("worker", programs::EVENTS, "")
        .route_kind("queue", "queue = \"jobs\"\nfunction = \"worker\"")
        .function("web", programs::HELLO, "")
        .route("/hello", "web", "")
}

async fn status(nimbus: &Nimbus, path: &str) -> u16 {
    client()
        .get(nimbus.admin_url(path))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The one span named `name`.
fn span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one span `{name}` in {spans:#?}");
    found[0]
}

fn end(span: &Value) -> u64 {
    span["start_us"].as_u64().unwrap() + span["duration_us"].as_u64().unwrap()
}

/// `child` hangs under `parent` and starts no earlier.
fn assert_child(child: &Value, parent: &Value) {
    assert_eq!(
        child["parent_id"], parent["span_id"],
        "{child} under {parent}"
    );
    assert!(child["start_us"].as_u64() >= parent["start_us"].as_u64());
}

#[tokio::test]
async fn a_trace_is_drawn_from_the_records_of_every_invocation_in_it() {
    let app = app();
    let nimbus = app.start().await;
    let response = client()
        .post(nimbus.admin_url("/v1/functions/caller/invoke"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .body("invoke:callee:send:jobs:hi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let caller_id = answer["invocation_id"].as_str().unwrap().to_owned();

    // The worker runs once the message is delivered; its record closes the
    // trace.
    let listed = until("for the three records of the trace", || async {
        let page = get_json(nimbus.admin_url(&format!("/v1/invocations?trace_id={TRACE}"))).await;
        let records = page["invocations"].as_array().unwrap().clone();
        (records.len() == 3).then_some(records)
    })
    .await;
    let functions: Vec<&str> = listed
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["worker", "callee", "caller"], "newest first");

    let trace = get_json(nimbus.admin_url(&format!("/v1/traces/{TRACE}"))).await;
    assert_eq!(trace["trace_id"], TRACE);
    assert_eq!(trace["truncated"], false);
    let order: Vec<&str> = trace["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["function"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["caller", "callee", "worker"], "oldest first");
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 5, "{spans:#?}");

    let invoke_caller = span(spans, "invoke caller");
    let call = span(spans, "call callee");
    let invoke_callee = span(spans, "invoke callee");
    let send = span(spans, "send jobs");
    let invoke_worker = span(spans, "invoke worker");
    // The caller's own traceparent is the root's parent.
    assert_eq!(invoke_caller["parent_id"], CALLER_SPAN);
    assert_child(call, invoke_caller);
    assert_child(invoke_callee, call);
    assert_child(send, invoke_callee);
    assert_child(invoke_worker, send);
    // A synchronous call ends within its caller; the callee within the call.
    assert!(end(call) <= end(invoke_caller));
    assert!(end(invoke_callee) <= end(call));
    assert_eq!(call["kind"], "client");
    assert_eq!(send["kind"], "producer");
    assert_eq!(invoke_caller["kind"], "internal");
    assert_eq!(invoke_caller["invocation_id"], caller_id.as_str());
    assert_eq!(
        invoke_caller["attributes"]["faas.invocation_id"],
        caller_id.as_str()
    );
    assert_eq!(call["invocation_id"], caller_id.as_str());
    assert_eq!(call["attributes"]["faas.invoked_name"], "callee");
    assert_eq!(invoke_worker["function"], "worker");
    assert!(spans.iter().all(|s| s["error"].is_null()));
    // Sorted by start: each parent before its children here.
    let starts: Vec<u64> = spans
        .iter()
        .map(|s| s["start_us"].as_u64().unwrap())
        .collect();
    assert!(starts.is_sorted(), "{starts:?}");

    // One record keeps its own spans.
    let record = support::invocation_record(&nimbus, &caller_id).await;
    let own: Vec<&str> = record["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        own,
        ["call callee", "invoke caller"],
        "in the order they ended"
    );
    assert_eq!(record["spans_dropped"], 0);
    // Listing leaves spans out, as it leaves out output.
    assert!(listed.iter().all(|r| r.get("spans").is_none()));

    // The CLI prints the tree, each span indented under its parent.
    let output = support::nimbus(&["trace", TRACE, "--admin", &nimbus.admin], app.dir.path());
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|line| line.split("  ").find(|cell| !cell.is_empty()).unwrap())
        .collect();
    assert!(text.starts_with("SPAN "), "{text}");
    assert_eq!(
        names,
        [
            "invoke caller",
            "call callee",
            "invoke callee",
            "send jobs",
            "invoke worker"
        ],
        "{text}"
    );
    for (line, depth) in text.lines().skip(1).zip(0..) {
        assert!(
            line.starts_with(&format!("{}{}", "  ".repeat(depth), names[depth])),
            "depth {depth}: {text}"
        );
    }
    assert!(text.contains(&caller_id), "{text}");
    let unknown = support::nimbus(
        &[
            "trace",
            "0af7651916cd43dd8448eb211c80319c",
            "--admin",
            &nimbus.admin,
        ],
        app.dir.path(),
    );
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no invocation of trace"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn an_http_invocation_keeps_its_span_under_the_gateways() {
    let nimbus = app().start().await;
    let response = reqwest::Client::new()
        .get(nimbus.url("/hello"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-00"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    let record = support::invocation_record(&nimbus, &id).await;
    assert_eq!(record["trace_id"], TRACE);
    let spans = record["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let own = &spans[0];
    assert_eq!(own["name"], "invoke web");
    // An unsampled caller is still recorded here (the record is local);
    // the span's parent is the gateway's request span, not the caller's.
    let parent = own["parent_id"].as_str().unwrap();
    assert_eq!(parent.len(), 16);
    assert_ne!(parent, CALLER_SPAN);
    assert!(own["duration_us"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn bad_and_unknown_trace_ids_are_refused() {
    let nimbus = app().start().await;
    for bad in [
        "/v1/traces/4BF92F3577B34DA6A3CE929D0E0E4736",
        "/v1/traces/4bf92f",
        "/v1/traces/..%2F..%2Fetc",
        "/v1/invocations?trace_id=xyz",
    ] {
        assert_eq!(status(&nimbus, bad).await, 400, "{bad}");
    }
    assert_eq!(
        status(&nimbus, "/v1/traces/0af7651916cd43dd8448eb211c80319c").await,
        404
    );
}

#[tokio::test]
async fn a_host_call_cut_off_by_the_deadline_is_kept_as_cancelled() {
    let nimbus = TestApp::new("traces-cut")
        .function(
            "caller",
            programs::EVENTS,
            "timeout_ms = 300\nallow = [\"function:callee:invoke\"]",
        )
        .function("callee", programs::EVENTS, "")
        .start()
        .await;
    let response = client()
        .post(nimbus.admin_url("/v1/functions/caller/invoke"))
        .body("invoke:callee:sleep:5000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    let answer: Value = response.json().await.unwrap();
    let id = answer["invocation_id"].as_str().unwrap().to_owned();
    let record = support::invocation_record(&nimbus, &id).await;
    assert_eq!(record["outcome"], "timeout");
    let spans = record["spans"].as_array().unwrap();
    let call = span(spans, "call callee");
    assert_eq!(call["error"], "cancelled before it ended");
    let own = span(spans, "invoke caller");
    assert!(
        own["error"].as_str().unwrap().contains("300 ms deadline"),
        "{own}"
    );
    assert_child(call, own);
}
