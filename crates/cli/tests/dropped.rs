//! Queues, tables and buckets a new version drops, through the real server
//! and CLI: their data stays readable through `/v1` until deleted; deleting
//! one the running version declares (or uses for a trigger, or that another
//! queue names as its dead-letter queue) is refused with the reason; the
//! delete verbs say what went, and then the thing and its data are gone:
//! 404 on every read and on a second delete, the blob files gone from the
//! data directory, and nothing there when a later version declares it again.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::path::Path;
use support::{Nimbus, TestApp, cli, client, get_json, version};

/// What both versions declare.
const KEPT: &str = r#"
[queue.jobs]

[table.items]
partition_key = "id"

[bucket.files]
"#;

/// What only the first version declares.
const DROPPED: &str = r#"
[queue.old-jobs]

[queue.old-src]
max_receive_count = 1
dead_letter_queue = "old-dlq"

[queue.old-dlq]

[table.old-items]
partition_key = "id"
stream = "keys_only"

[bucket.old-files]
"#;

/// Version one: an HTTP function and an event function `worker` with the
/// kept declarations, plus an event function `gone` (so `_async.gone`) and
/// the dropped declarations.
fn v1() -> TestApp {
    TestApp::new("dropped")
        .function("web", programs::HELLO, KEPT)
        .function("worker", programs::EVENTS, DROPPED)
        .function("gone", programs::EVENTS, "")
        .route("/hello", "web", "")
}

/// Version two: without `gone` and the dropped declarations.
fn v2() -> TestApp {
    TestApp::new("dropped")
        .function("web", programs::HELLO, KEPT)
        .function("worker", programs::EVENTS, "")
        .route("/hello", "web", "")
}

/// Runs a CLI verb that must succeed; returns what it printed.
async fn ok(nimbus: &Nimbus, args: &[&str]) -> String {
    let output = cli(nimbus, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a CLI verb that must fail; returns its error.
async fn refused(nimbus: &Nimbus, args: &[&str]) -> String {
    let output = cli(nimbus, args).await;
    assert!(!output.status.success(), "{args:?} succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn call(nimbus: &Nimbus, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client().request(method.parse().unwrap(), nimbus.admin_url(path));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn put_object(nimbus: &Nimbus, bucket: &str, key: &str, bytes: &'static str) {
    let response = client()
        .put(nimbus.admin_url(&format!("/v1/buckets/{bucket}/objects/{key}")))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{bucket}/{key}");
}

/// `GET /v1/buckets`: each bucket's name and whether it is declared.
async fn listed_buckets(nimbus: &Nimbus) -> Vec<(String, bool)> {
    let listed = get_json(nimbus.admin_url("/v1/buckets")).await;
    listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let name = b["name"].as_str().unwrap().to_owned();
            (name, b["declared"].as_bool().unwrap())
        })
        .collect()
}

/// The files in the data directory's blob directory of `bucket` (none if
/// the directory is gone).
fn blob_files(nimbus_data: &Path, bucket: &str) -> usize {
    match std::fs::read_dir(nimbus_data.join("buckets").join(bucket)) {
        Ok(entries) => entries.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_queues_tables_and_buckets_keep_their_data_until_deleted_then_are_gone() {
    let one = v1();
    let nimbus = one.start().await;
    let data = one.data_dir();
    for batch in [10, 2] {
        let messages: Vec<Value> = (0..batch)
            .map(|i| json!({ "body": format!("m{i}") }))
            .collect();
        let (status, _) = call(
            &nimbus,
            "POST",
            "/v1/queues/old-jobs/messages/batch",
            Some(json!({ "messages": messages })),
        )
        .await;
        assert_eq!(status, 200);
    }
    for id in ["a", "b", "c"] {
        let (status, body) = call(
            &nimbus,
            "POST",
            "/v1/tables/old-items/items",
            Some(json!({ "item": { "id": id } })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    put_object(&nimbus, "old-files", "a.txt", "hello").await;
    put_object(&nimbus, "old-files", "b/c.txt", "world!").await;
    put_object(&nimbus, "files", "kept.txt", "kept").await;
    assert_eq!(blob_files(&data, "old-files"), 2);

    // Version two drops them.
    let two = version(one.dir.path(), "v2.toml", &v2());
    ok(&nimbus, &["deploy", two.to_str().unwrap()]).await;

    // Their data is still there to read.
    let stats = get_json(nimbus.admin_url("/v1/queues/old-jobs")).await;
    assert_eq!(stats["visible"], 12, "{stats}");
    let items = get_json(nimbus.admin_url("/v1/tables/old-items/items")).await;
    assert_eq!(items["items"].as_array().unwrap().len(), 3, "{items}");
    let stream = get_json(nimbus.admin_url("/v1/tables/old-items/stream")).await;
    assert_eq!(stream["records"].as_array().unwrap().len(), 3, "{stream}");
    let tables = get_json(nimbus.admin_url("/v1/tables")).await;
    let listed: Vec<(&str, bool)> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["declared"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("items", true), ("old-items", false)], "{tables}");
    assert_eq!(
        listed_buckets(&nimbus).await,
        [("files".to_owned(), true), ("old-files".to_owned(), false)]
    );
    let objects = get_json(nimbus.admin_url("/v1/buckets/old-files/objects")).await;
    assert_eq!(objects["objects"].as_array().unwrap().len(), 2, "{objects}");
    let read = client()
        .get(nimbus.admin_url("/v1/buckets/old-files/objects/b/c.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "world!");

    // What the running version declares is not deleted, through the API or
    // the CLI.
    for (path, kind, name) in [
        ("/v1/queues/jobs", "queue", "jobs"),
        ("/v1/tables/items", "table", "items"),
        ("/v1/buckets/files", "bucket", "files"),
    ] {
        let (status, body) = call(&nimbus, "DELETE", path, None).await;
        assert_eq!(status, 409, "{path}: {body}");
        let reason = format!(
            "{kind} `{name}` is declared by the running version; remove it from the manifest and deploy first"
        );
        assert_eq!(body["error"], reason.as_str(), "{path}");
        let error = refused(&nimbus, &[kind, "delete", name]).await;
        assert!(error.contains(&reason) && error.contains("409"), "{error}");
    }

    // The dropped ones are, each saying what went with it.
    assert_eq!(
        ok(&nimbus, &["queue", "delete", "old-jobs"]).await,
        "deleted queue `old-jobs` (12 messages)\n"
    );
    assert_eq!(
        ok(&nimbus, &["table", "delete", "old-items"]).await,
        "deleted table `old-items` (3 items, 3 change records)\n"
    );
    assert_eq!(
        ok(&nimbus, &["bucket", "delete", "old-files"]).await,
        "deleted bucket `old-files` (2 objects, 11 bytes)\n"
    );

    // Gone, with their data: every read and a second delete is a 404.
    for path in [
        "/v1/queues/old-jobs",
        "/v1/queues/old-jobs/messages",
        "/v1/tables/old-items/items",
        "/v1/tables/old-items/stream",
        "/v1/buckets/old-files/objects",
        "/v1/buckets/old-files/objects/a.txt",
    ] {
        let (status, body) = call(&nimbus, "GET", path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    for (kind, name) in [
        ("queue", "old-jobs"),
        ("table", "old-items"),
        ("bucket", "old-files"),
    ] {
        let (status, body) = call(&nimbus, "DELETE", &format!("/v1/{kind}s/{name}"), None).await;
        assert_eq!(status, 404, "{kind} {name}: {body}");
        let error = refused(&nimbus, &[kind, "delete", name]).await;
        assert!(
            error.contains(&format!("{kind} `{name}` does not exist")) && error.contains("404"),
            "{error}"
        );
    }
    let tables = get_json(nimbus.admin_url("/v1/tables")).await;
    assert_eq!(tables["tables"].as_array().unwrap().len(), 1, "{tables}");
    assert_eq!(listed_buckets(&nimbus).await, [("files".to_owned(), true)]);
    assert_eq!(blob_files(&data, "old-files"), 0);
    assert_eq!(blob_files(&data, "files"), 1);

    // What the running version declares kept its data.
    let kept = client()
        .get(nimbus.admin_url("/v1/buckets/files/objects/kept.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.text().await.unwrap(), "kept");

    // Declared again by a later version, each starts empty.
    let three = version(one.dir.path(), "v3.toml", &v1());
    ok(&nimbus, &["deploy", three.to_str().unwrap()]).await;
    let stats = get_json(nimbus.admin_url("/v1/queues/old-jobs")).await;
    assert_eq!(stats["visible"], 0, "{stats}");
    let items = get_json(nimbus.admin_url("/v1/tables/old-items/items")).await;
    assert_eq!(items["items"], json!([]), "{items}");
    let stream = get_json(nimbus.admin_url("/v1/tables/old-items/stream")).await;
    assert_eq!(stream["records"], json!([]), "{stream}");
    let objects = get_json(nimbus.admin_url("/v1/buckets/old-files/objects")).await;
    assert_eq!(objects["objects"], json!([]), "{objects}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_queue_or_a_trigger_queue_in_use_is_not_deleted() {
    let one = v1();
    let nimbus = one.start().await;
    let (status, _) = call(
        &nimbus,
        "POST",
        "/v1/queues/old-dlq/messages",
        Some(json!({ "body": "dead" })),
    )
    .await;
    assert_eq!(status, 200);
    let two = version(one.dir.path(), "v2.toml", &v2());
    ok(&nimbus, &["deploy", two.to_str().unwrap()]).await;

    // `old-src` moves its dead letters to `old-dlq`: that goes first.
    let (status, body) = call(&nimbus, "DELETE", "/v1/queues/old-dlq", None).await;
    assert_eq!(status, 409, "{body}");
    let reason =
        "queue `old-dlq` is the dead-letter queue of queue `old-src`; delete `old-src` first";
    assert_eq!(body["error"], reason);
    let error = refused(&nimbus, &["queue", "delete", "old-dlq"]).await;
    assert!(error.contains(reason), "{error}");
    assert_eq!(
        ok(&nimbus, &["queue", "delete", "old-src"]).await,
        "deleted queue `old-src` (0 messages)\n"
    );
    assert_eq!(
        ok(&nimbus, &["queue", "delete", "old-dlq"]).await,
        "deleted queue `old-dlq` (1 message)\n"
    );

    // The running version's trigger queue (its event function's async
    // invocations) stays; the dropped function's goes.
    let (status, body) = call(&nimbus, "DELETE", "/v1/queues/_async.worker", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"],
        "queue `_async.worker` is declared by the running version; \
         deploy a version without the triggers that use it first"
    );
    assert_eq!(
        ok(&nimbus, &["queue", "delete", "_async.gone"]).await,
        "deleted queue `_async.gone` (0 messages)\n"
    );
    let queues = get_json(nimbus.admin_url("/v1/queues")).await;
    let names: Vec<&str> = queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_async.worker", "jobs", "old-jobs"], "{queues}");
}
