//! Buckets through the real server: objects over `/v1` (put, get with
//! ranges, head, list, delete; hostile keys and oversize bodies refused;
//! bytes where `--objects file:PATH` says),
//! object triggers (created and removed events, prefix and suffix filters,
//! sequencers, retries then the failure destination, batch size), and the
//! bucket capability with its grants (allowed, and each denial audited).

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{Nimbus, TestApp, client, get_json, until};

fn object_url(nimbus: &Nimbus, bucket: &str, key: &str) -> String {
    nimbus.admin_url(&format!("/v1/buckets/{bucket}/objects/{key}"))
}

async fn put(nimbus: &Nimbus, bucket: &str, key: &str, body: &str) -> reqwest::Response {
    client()
        .put(object_url(nimbus, bucket, key))
        .header("content-type", "text/plain")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn delete(nimbus: &Nimbus, bucket: &str, key: &str) -> reqwest::StatusCode {
    client()
        .delete(object_url(nimbus, bucket, key))
        .send()
        .await
        .unwrap()
        .status()
}

/// The JSON bodies of the object events the events program printed.
fn handled_objects(nimbus: &Nimbus, function: &str) -> Vec<(String, Value)> {
    nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("handled data={") && l.contains(&format!("function={function}")))
        .map(|l| {
            let data = l.split("handled data=").nth(1).unwrap();
            let json = &data[..data.find(" attempt=").unwrap()];
            let kind = l.split(" type=").nth(1).unwrap().split(' ').next().unwrap();
            (kind.to_owned(), serde_json::from_str(json).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn objects_round_trip_over_the_api_with_metadata_ranges_and_listing() {
    let app = TestApp::new("objects").function("worker", programs::EVENTS, "\n[bucket.files]");
    let nimbus = app.start().await;
    let response = client()
        .put(object_url(&nimbus, "files", "docs/readme.txt"))
        .header("content-type", "text/plain")
        .header("x-nimbus-meta-owner", "ada")
        .body("hello, bucket")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["size"], 13);
    assert_eq!(etag, format!("\"{}\"", stored["etag"].as_str().unwrap()));

    let got = client()
        .get(object_url(&nimbus, "files", "docs/readme.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert_eq!(got.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(got.headers()["x-nimbus-meta-owner"], "ada");
    assert_eq!(got.text().await.unwrap(), "hello, bucket");

    let part = client()
        .get(object_url(&nimbus, "files", "docs/readme.txt"))
        .header("range", "bytes=7-12")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 7-12/13");
    assert_eq!(part.text().await.unwrap(), "bucket");
    let beyond = client()
        .get(object_url(&nimbus, "files", "docs/readme.txt"))
        .header("range", "bytes=13-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], "bytes */13");

    let head = client()
        .head(object_url(&nimbus, "files", "docs/readme.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "13");

    for key in ["docs/a.txt", "docs/img/1.png", "top.txt"] {
        assert_eq!(put(&nimbus, "files", key, "x").await.status(), 200);
    }
    let listed = get_json(nimbus.admin_url("/v1/buckets/files/objects?delimiter=/")).await;
    assert_eq!(listed["common_prefixes"], serde_json::json!(["docs/"]));
    assert_eq!(listed["objects"][0]["key"], "top.txt");
    let page = get_json(nimbus.admin_url("/v1/buckets/files/objects?prefix=docs/&limit=2")).await;
    assert_eq!(page["objects"].as_array().unwrap().len(), 2);
    let next = page["next_start_after"].as_str().unwrap();
    let rest = get_json(nimbus.admin_url(&format!(
        "/v1/buckets/files/objects?prefix=docs/&limit=2&start_after={next}"
    )))
    .await;
    assert_eq!(rest["objects"][0]["key"], "docs/readme.txt");
    assert!(rest["next_start_after"].is_null());
    let buckets = get_json(nimbus.admin_url("/v1/buckets")).await;
    assert_eq!(buckets["buckets"][0]["name"], "files");

    assert_eq!(delete(&nimbus, "files", "top.txt").await, 204);
    assert_eq!(delete(&nimbus, "files", "top.txt").await, 404);
    let gone = client()
        .get(object_url(&nimbus, "files", "top.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn objects_file_keeps_object_bytes_in_the_directory_it_names() {
    let app = TestApp::new("objfile").function("worker", programs::EVENTS, "\n[bucket.files]");
    let elsewhere = tempfile::tempdir().unwrap();
    let objects = format!("file:{}", elsewhere.path().display());
    let nimbus = app.start_with(&["--objects", &objects]).await;
    assert_eq!(put(&nimbus, "files", "a.txt", "here").await.status(), 200);
    let got = client()
        .get(object_url(&nimbus, "files", "a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "here");
    let blobs = std::fs::read_dir(elsewhere.path().join("files"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);
    assert!(!app.data_dir().join("buckets").exists());
}

#[tokio::test]
async fn hostile_keys_and_oversize_bodies_get_clear_client_errors() {
    let app = TestApp::new("hostile").function(
        "worker",
        programs::EVENTS,
        "\n[bucket.small]\nmax_object_bytes = 8",
    );
    let nimbus = app.start().await;
    for (key, says) in [
        ("a%2F..%2Fb", "`.` or `..` segment"),
        ("%2Fetc%2Fpasswd", "starts with `/`"),
        ("a%00b", "NUL"),
        ("a%5Cb", "backslash"),
        ("a%0Ab", "control character"),
    ] {
        let response = put(&nimbus, "small", key, "x").await;
        assert_eq!(response.status(), 400, "{key}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("invalid object key") && error.contains(says),
            "{key}: {error}"
        );
    }
    let long = "k".repeat(1025);
    assert_eq!(put(&nimbus, "small", &long, "x").await.status(), 400);

    let big = put(&nimbus, "small", "big", "123456789").await;
    assert_eq!(big.status(), 413);
    let body: Value = big.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("limit of 8 bytes"),
        "{body}"
    );
    // Without a Content-Length, the limit holds while the body is read.
    let chunked = format!(
        "PUT /v1/buckets/small/objects/chunked HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
        support::ADMIN_TOKEN
    );
    let answer = support::raw_request(
        nimbus.admin.trim_start_matches("http://"),
        chunked.as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit of 8 bytes"), "{answer}");
    assert_eq!(put(&nimbus, "nope", "k", "x").await.status(), 404);
    assert_eq!(put(&nimbus, "small", "ok", "12345678").await.status(), 200);
    let listed = get_json(nimbus.admin_url("/v1/buckets/small/objects")).await;
    assert_eq!(listed["objects"].as_array().unwrap().len(), 1, "{listed}");
}

const TRIGGERED: &str = "\n[bucket.photos]\n[queue.failed]";

#[tokio::test]
async fn created_and_removed_events_reach_the_function_filtered_by_prefix_and_suffix() {
    let app = TestApp::new("objtrig")
        .function("all", programs::EVENTS, TRIGGERED)
        .function("pngs", programs::EVENTS, "")
        .function("removals", programs::EVENTS, "")
        .route_kind("object", "bucket = \"photos\"\nfunction = \"all\"")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"pngs\"\nprefix = \"img/\"\nsuffix = \".png\"\nevents = [\"created\"]",
        )
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"removals\"\nevents = [\"removed\"]",
        );
    let nimbus = app.start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = client()
        .put(object_url(&nimbus, "photos", "img/cat.png"))
        .header("traceparent", traceparent)
        .body("meow")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        put(&nimbus, "photos", "img/notes.txt", "x").await.status(),
        200
    );
    assert_eq!(
        put(&nimbus, "photos", "doc/dog.png", "x").await.status(),
        200
    );
    assert_eq!(delete(&nimbus, "photos", "img/cat.png").await, 204);

    nimbus
        .stderr
        .wait_for_count("with every event at `all`", 4, |l| {
            l.contains("handled data={") && l.contains("function=all")
        })
        .await;
    nimbus
        .stderr
        .wait_for("with the removal at `removals`", |l| {
            l.contains("handled data={") && l.contains("function=removals")
        })
        .await;
    nimbus
        .stderr
        .wait_for("with the png at `pngs`", |l| {
            l.contains("handled data={") && l.contains("function=pngs")
        })
        .await;
    let all = handled_objects(&nimbus, "all");
    let mut kinds: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["nimbus.object.created"; 3]
            .iter()
            .chain(&["nimbus.object.removed"])
            .copied()
            .collect::<Vec<_>>()
    );
    let cat = all
        .iter()
        .find(|(k, v)| k == "nimbus.object.created" && v["key"] == "img/cat.png")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(cat["bucket"], "photos");
    assert_eq!(cat["size"], 4);
    assert_eq!(cat["etag"], created["etag"]);
    assert_eq!(cat["sequencer"], created["sequencer"]);
    assert!(
        all.iter().any(|(_, v)| v["key"] == "img/cat.png"
            && v["sequencer"].as_str() > cat["sequencer"].as_str())
    );

    // Filters: only the created png under img/, only the removal.
    let pngs = handled_objects(&nimbus, "pngs");
    assert_eq!(pngs.len(), 1, "{pngs:?}");
    assert_eq!(pngs[0].1["key"], "img/cat.png");
    let removals = handled_objects(&nimbus, "removals");
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(removals[0].0, "nimbus.object.removed");
    assert!(
        nimbus
            .stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("subject=img/cat.png") && l.contains("function=pngs"))
    );
    // The upload's trace continues in the object function's invocation.
    let records = until("for the pngs invocation record", || async {
        let page = get_json(nimbus.admin_url("/v1/invocations?function=pngs")).await;
        let found = page["invocations"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(records[0]["trigger"], "object");
    assert_eq!(records[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // Each committed change is counted by bucket and type.
    let metrics = support::get_text(nimbus.admin_url("/metrics")).await;
    assert!(
        metrics.contains("nimbus_object_events_total{bucket=\"photos\",type=\"created\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nimbus_object_events_total{bucket=\"photos\",type=\"removed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn sequencers_increase_per_key_across_puts_and_deletes() {
    let app = TestApp::new("objseq")
        .function("all", programs::EVENTS, TRIGGERED)
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"all\"\nmax_concurrency = 1\nbatch_size = 1",
        );
    let nimbus = app.start().await;
    let mut acknowledged = Vec::new();
    for body in ["1", "22", "333"] {
        let response = put(&nimbus, "photos", "same", body).await;
        let meta: Value = response.json().await.unwrap();
        acknowledged.push(meta["sequencer"].as_str().unwrap().to_owned());
    }
    assert_eq!(delete(&nimbus, "photos", "same").await, 204);
    nimbus
        .stderr
        .wait_for_count("with four events", 4, |l| l.contains("handled data={"))
        .await;
    let events = handled_objects(&nimbus, "all");
    let sequencers: Vec<String> = events
        .iter()
        .map(|(_, v)| v["sequencer"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = sequencers.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "{sequencers:?}");
    assert_eq!(&sorted[..3], &acknowledged[..]);
    // Sizes follow sequencers: the later event describes the later write.
    let mut by_seq: Vec<(String, Value)> = events
        .into_iter()
        .map(|(k, v)| {
            (
                v["sequencer"].as_str().unwrap().to_owned(),
                serde_json::json!([k, v["size"]]),
            )
        })
        .collect();
    by_seq.sort_by(|a, b| a.0.cmp(&b.0));
    let sizes: Vec<Value> = by_seq.iter().map(|(_, v)| v[1].clone()).collect();
    assert_eq!(sizes, [1, 2, 3, 3]);
    assert_eq!(by_seq[3].1[0], "nimbus.object.removed");
}

#[tokio::test]
async fn a_failing_handler_is_retried_then_its_record_goes_to_on_failure() {
    let app = TestApp::new("objfail")
        .function("all", programs::EVENTS, TRIGGERED)
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"all\"\nevents = [\"created\"]\nmax_retry_attempts = 1\nretry_backoff = { initial_ms = 0, max_ms = 0 }\non_failure = \"queue:failed\"",
        );
    let nimbus = app.start().await;
    assert_eq!(
        put(&nimbus, "photos", "will-fail.txt", "x").await.status(),
        200
    );
    let records = until("for the failure record", || async {
        let page: Value = get_json(nimbus.admin_url("/v1/queues/failed/messages")).await;
        let found = page["messages"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "RetriesExhausted");
    assert_eq!(record["event_type"], "nimbus.object.created");
    assert_eq!(record["subject"], "will-fail.txt");
    assert_eq!(record["attempts"], 2);
    let attempts = nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("handled data={") && l.contains("will-fail.txt"))
        .count();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn batch_size_bounds_the_events_of_one_invocation() {
    let app = TestApp::new("objbatch")
        .function("all", programs::EVENTS, TRIGGERED)
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"all\"\nbatch_size = 3\nbatch_window_ms = 2000\nmax_concurrency = 1",
        );
    let nimbus = app.start().await;
    for i in 0..7 {
        assert_eq!(
            put(&nimbus, "photos", &format!("k{i}"), "x").await.status(),
            200
        );
    }
    nimbus
        .stderr
        .wait_for_count("with all seven events", 7, |l| l.contains("handled data={"))
        .await;
    let batches: Vec<usize> = nimbus
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("handled data={"))
        .map(|l| {
            let b = l.split(" batch=").nth(1).unwrap();
            b[..b.find(' ').unwrap()].parse().unwrap()
        })
        .collect();
    assert!(batches.iter().all(|&b| b <= 3), "{batches:?}");
    assert!(batches.contains(&3), "{batches:?}");
}

async fn invoke(nimbus: &Nimbus, function: &str, data: &str) {
    let response = client()
        .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke")))
        .body(data.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{data}");
}

fn grants_app(name: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "writer",
            programs::EVENTS,
            "allow = [\"bucket:photos/uploads/:write\", \"bucket:photos:read\"]\n\n[bucket.photos]\n[bucket.private]",
        )
        .function("reader", programs::EVENTS, "allow = [\"bucket:photos:read\"]")
}

#[tokio::test]
async fn a_granted_function_puts_gets_lists_and_deletes_objects() {
    let nimbus = grants_app("bucketok").start().await;
    invoke(&nimbus, "writer", "put:photos:uploads/a.txt=from the guest").await;
    nimbus
        .stderr
        .wait_for("the guest's put", |l| {
            l.contains("bucket put photos/uploads/a.txt size=14 etag=")
        })
        .await;
    let got = client()
        .get(object_url(&nimbus, "photos", "uploads/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert_eq!(got.text().await.unwrap(), "from the guest");
    invoke(&nimbus, "reader", "get:photos:uploads/a.txt").await;
    nimbus
        .stderr
        .wait_for("the guest's get", |l| {
            l.contains("bucket get photos/uploads/a.txt body=from the guest")
        })
        .await;
    invoke(&nimbus, "reader", "list:photos:uploads/").await;
    nimbus
        .stderr
        .wait_for("the guest's list", |l| {
            l.contains("bucket list photos/uploads/ keys=uploads/a.txt")
        })
        .await;
    invoke(&nimbus, "writer", "delete:photos:uploads/a.txt").await;
    nimbus
        .stderr
        .wait_for("the guest's delete", |l| {
            l.contains("bucket delete photos/uploads/a.txt existed=true")
        })
        .await;
    invoke(&nimbus, "reader", "get:photos:uploads/a.txt").await;
    nimbus
        .stderr
        .wait_for("the guest's not-found", |l| {
            l.contains("bucket get photos/uploads/a.txt error=Error::NotFound")
        })
        .await;
}

/// Invokes `function` with `data`, then waits for the guest-visible denial
/// and the audit line naming `grant`.
async fn assert_denied(nimbus: &Nimbus, function: &str, data: &str, printed: &str, grant: &str) {
    invoke(nimbus, function, data).await;
    let seen = nimbus
        .stderr
        .wait_for("the guest-visible denial", |l| l.contains(printed))
        .await;
    assert!(
        seen.contains(&format!("AccessDenied(\"{grant}\")")),
        "{seen}"
    );
    nimbus
        .stderr
        .wait_for("the audit line", |l| {
            l.contains("nimbus::audit")
                && l.contains(&format!("function={function}"))
                && l.contains(&format!("grant={grant}"))
        })
        .await;
}

#[tokio::test]
async fn a_bucket_the_function_is_not_granted_is_denied_and_audited() {
    let nimbus = grants_app("bucketwrong").start().await;
    assert_denied(
        &nimbus,
        "writer",
        "get:private:k",
        "bucket get private/k error=",
        "bucket:private:read",
    )
    .await;
}

#[tokio::test]
async fn a_key_outside_the_granted_prefix_is_denied_and_audited() {
    let nimbus = grants_app("bucketprefix").start().await;
    assert_denied(
        &nimbus,
        "writer",
        "put:photos:elsewhere/a.txt=x",
        "bucket put photos/elsewhere/a.txt error=",
        "bucket:photos/elsewhere/a.txt:write",
    )
    .await;
    let gone = client()
        .get(object_url(&nimbus, "photos", "elsewhere/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_read_only_grant_cannot_write_and_the_denial_is_audited() {
    let nimbus = grants_app("bucketro").start().await;
    assert_denied(
        &nimbus,
        "reader",
        "put:photos:uploads/x=1",
        "bucket put photos/uploads/x error=",
        "bucket:photos:write",
    )
    .await;
    assert_denied(
        &nimbus,
        "reader",
        "delete:photos:uploads/x",
        "bucket delete photos/uploads/x error=",
        "bucket:photos:write",
    )
    .await;
}

#[tokio::test]
async fn the_bucket_cli_puts_gets_lists_heads_and_removes() {
    let app = TestApp::new("bucketcli").function("worker", programs::EVENTS, "\n[bucket.files]");
    let nimbus = app.start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from the cli").unwrap();
    let admin = nimbus.admin.as_str();
    let run = |args: &[&str]| {
        let mut all = vec!["bucket"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", admin]);
        let output = support::nimbus(&all, dir.path());
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let put: Value = serde_json::from_str(&run(&[
        "put",
        "files",
        "dir/in.txt",
        "in.txt",
        "--content-type",
        "text/plain",
        "--meta",
        "owner=ada",
    ]))
    .unwrap();
    assert_eq!(put["size"], 12);
    assert_eq!(run(&["get", "files", "dir/in.txt"]), "from the cli");
    assert_eq!(run(&["get", "files", "dir/in.txt", "--range", "-3"]), "cli");
    let head: Value = serde_json::from_str(&run(&["head", "files", "dir/in.txt"])).unwrap();
    assert_eq!(head["x-nimbus-meta-owner"], "ada");
    assert_eq!(head["content-length"], "12");
    let listed: Value =
        serde_json::from_str(&run(&["ls", "files", "--delimiter", "/", "-o", "json"])).unwrap();
    assert_eq!(listed["common_prefixes"], serde_json::json!(["dir/"]));
    let buckets: Value = serde_json::from_str(&run(&["ls", "-o", "json"])).unwrap();
    assert_eq!(buckets["buckets"][0]["name"], "files");
    run(&["rm", "files", "dir/in.txt"]);
    let output = support::nimbus(
        &["bucket", "get", "files", "dir/in.txt", "--admin", admin],
        dir.path(),
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[tokio::test]
async fn an_object_trigger_on_an_http_function_stops_the_app_at_start() {
    let app = TestApp::new("objhttp")
        .function("hello", programs::HELLO, "\n[bucket.photos]")
        .route_kind("object", "bucket = \"photos\"\nfunction = \"hello\"");
    let output = std::process::Command::new(support::nimbus_bin())
        .arg("up")
        .arg(app.write())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the object trigger on bucket `photos` invokes function `hello`, which is an HTTP function"),
        "{stderr}"
    );
}

async fn queue_bodies(nimbus: &Nimbus, queue: &str) -> Vec<Value> {
    let page: Value = get_json(nimbus.admin_url(&format!("/v1/queues/{queue}/messages"))).await;
    page["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn reported_item_failures_retry_only_those_events_and_successes_are_recorded() {
    let app = TestApp::new("objitems")
        .function("all", programs::EVENTS, "\n[bucket.photos]\n[queue.failed]\n[queue.done]")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"all\"\nevents = [\"created\"]\nbatch_size = 3\nbatch_window_ms = 1000\nmax_concurrency = 1\nreport_batch_item_failures = true\nmax_retry_attempts = 1\nretry_backoff = { initial_ms = 0, max_ms = 0 }\non_success = \"queue:done\"\non_failure = \"queue:failed\"",
        );
    let nimbus = app.start().await;
    for key in ["ok-1", "fail-2", "ok-3"] {
        assert_eq!(put(&nimbus, "photos", key, "x").await.status(), 200);
    }
    let failed = until("for the failure record", || async {
        let found = queue_bodies(&nimbus, "failed").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let done = until("for both success records", || async {
        let found = queue_bodies(&nimbus, "done").await;
        (found.len() == 2).then_some(found)
    })
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["subject"], "fail-2");
    assert_eq!(failed[0]["attempts"], 2);
    let mut succeeded: Vec<&str> = done
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    succeeded.sort();
    assert_eq!(succeeded, ["ok-1", "ok-3"]);
    assert!(
        done.iter()
            .all(|r| r["condition"] == "Success" && r["attempts"] == 1)
    );
    // The events the handler did not report were not retried.
    let handled = |key: &str| {
        nimbus
            .stderr
            .snapshot()
            .iter()
            .filter(|l| l.contains(&format!("subject={key} ")))
            .count()
    };
    assert_eq!(
        (handled("ok-1"), handled("fail-2"), handled("ok-3")),
        (1, 2, 1)
    );
}

#[tokio::test]
async fn an_event_past_max_event_age_is_not_invoked_again_but_recorded() {
    let app = TestApp::new("objage")
        .function("all", programs::EVENTS, "\n[bucket.photos]\n[queue.failed]")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"all\"\nmax_event_age_s = 60\nmax_retry_attempts = 2\nretry_backoff = { initial_ms = 1000, max_ms = 1000 }\non_failure = \"queue:failed\"",
        );
    let nimbus = app.start_with(&["--test-clock"]).await;
    assert_eq!(put(&nimbus, "photos", "fail-old", "x").await.status(), 200);
    // The first attempt fails; the retry waits on the (stopped) store clock.
    let stats_url = nimbus.admin_url("/v1/queues/_object.all.photos");
    until("for the failed attempt to be given back", || async {
        let stats = get_json(&stats_url).await;
        (stats["delayed"] == 1 && stats["in_flight"] == 0).then_some(())
    })
    .await;
    let advanced = client()
        .post(nimbus.admin_url("/v1/test/clock"))
        .body(r#"{"advance_ms": 120000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    let failed = until("for the age record", || async {
        let found = queue_bodies(&nimbus, "failed").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(failed[0]["condition"], "EventAgeExceeded");
    assert_eq!(failed[0]["subject"], "fail-old");
    let attempts = nimbus
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("subject=fail-old "))
        .count();
    assert_eq!(attempts, 1, "an expired event was invoked again");
}

/// Versions before trigger ids kept an object trigger's waiting events on a
/// queue named by the trigger's position (`_object.FUNCTION.INDEX`); after
/// an upgrade they reach the same trigger through its own queue.
#[tokio::test]
async fn events_left_on_a_position_named_queue_by_an_older_version_are_delivered() {
    use nimbus_store::QueueStore as _;
    let app = TestApp::new("legacy")
        .function("worker", programs::EVENTS, "\n[bucket.photos]")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"worker\"\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        );
    std::fs::create_dir_all(app.data_dir()).unwrap();
    {
        let options = nimbus_store_sqlite::SqliteOptions {
            path: app.data_dir().join("nimbus.db"),
            durability: nimbus_store_sqlite::Durability::Fsync,
        };
        let store = nimbus_store_sqlite::SqliteStore::open(
            &options,
            std::sync::Arc::new(nimbus_store::SystemClock),
        )
        .unwrap();
        let legacy = nimbus_store::QueueConfig {
            name: "_object.worker.0".into(),
            visibility_timeout_ms: 30_000,
            retention_ms: 86_400_000,
            delay_ms: 0,
            max_message_bytes: 16 * 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        };
        store.declare_queues(&[legacy]).await.unwrap();
        let event =
            serde_json::json!({"bucket": "photos", "key": "old/cat.png", "kind": "created"});
        store
            .send(
                "_object.worker.0",
                vec![nimbus_store::SendMessage {
                    body: event.to_string().into_bytes(),
                    delay_ms: None,
                    dedup_id: None,
                    attributes: Default::default(),
                }],
            )
            .await
            .unwrap();
    }
    let nimbus = app.start().await;
    let handled = until("the waiting event is handled", || async {
        let handled = handled_objects(&nimbus, "worker");
        (!handled.is_empty()).then_some(handled)
    })
    .await;
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!(handled[0].1["key"], "old/cat.png");
    let legacy = get_json(&nimbus.admin_url("/v1/queues/_object.worker.0")).await;
    assert_eq!(legacy["visible"], 0, "{legacy}");
}
