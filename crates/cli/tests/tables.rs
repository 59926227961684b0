//! Tables and stream triggers through the real server: items with versions
//! and conditions over `/v1`, and change records reaching stream functions
//! exactly as written (once each, in order per key) with partial batch
//! failures, bisection, retries, the failure destination, event age,
//! starting positions, restarts, retention and grants.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::HashMap;
use support::{Nimbus, TestApp, client, get_json, until};

const TABLE: &str = "[table.orders]\npartition_key = \"customer\"\nsort_key = \"order\"\nstream = \"new_and_old_images\"\nmax_item_bytes = 1024\n";

async fn put(nimbus: &Nimbus, body: Value) -> reqwest::Response {
    client()
        .post(nimbus.admin_url("/v1/tables/orders/items"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn put_ok(nimbus: &Nimbus, item: Value) -> u64 {
    let response = put(nimbus, json!({ "item": item })).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap()
}

async fn messages(nimbus: &Nimbus, queue: &str) -> Vec<Value> {
    let page: Value = get_json(nimbus.admin_url(&format!("/v1/queues/{queue}/messages"))).await;
    page["messages"].as_array().cloned().unwrap_or_default()
}

/// `(seq, key, attempt, batch)` of every change record a function printed.
fn handled(lines: &[String]) -> Vec<(u64, String, u32, u32)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("stream seq=")?..];
            let field = |name: &str| -> Option<String> {
                let start = rest.find(&format!("{name}="))? + name.len() + 1;
                Some(rest[start..].split(' ').next()?.to_owned())
            };
            Some((
                field("seq")?.parse().ok()?,
                field("key")?,
                field("attempt")?.parse().ok()?,
                field("batch")?.parse().ok()?,
            ))
        })
        .collect()
}

fn stream_app(name: &str, trigger: &str, extra: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "consumer",
            programs::TABLES,
            &format!("\n{TABLE}\n[queue.failed]\n{extra}"),
        )
        .route_kind(
            "stream",
            &format!("table = \"orders\"\nfunction = \"consumer\"\n{trigger}"),
        )
}

#[tokio::test]
async fn items_round_trip_through_the_api_with_versions_conditions_and_pages() {
    let app = TestApp::new("tableapi").function("f", programs::TABLES, &format!("\n{TABLE}"));
    let nimbus = app.start().await;
    let item = json!({ "customer": "ann", "order": "2026-01", "total": 5 });
    assert_eq!(put_ok(&nimbus, item.clone()).await, 1);
    assert_eq!(put_ok(&nimbus, item.clone()).await, 2);

    let absent = put(&nimbus, json!({ "item": item, "if_absent": true })).await;
    assert_eq!(absent.status(), 409);
    assert_eq!(absent.json::<Value>().await.unwrap()["current_version"], 2);
    let stale = put(&nimbus, json!({ "item": item, "if_version": 1 })).await;
    assert_eq!(stale.status(), 409);
    let fresh = put(&nimbus, json!({ "item": item, "if_version": 2 })).await;
    assert_eq!(fresh.status(), 200);

    let got = get_json(nimbus.admin_url("/v1/tables/orders/items/ann?sort=2026-01")).await;
    assert_eq!(got["version"], 3);
    assert_eq!(got["item"]["total"], 5);

    for order in ["2026-02", "2026-03", "2027-01"] {
        put_ok(&nimbus, json!({ "customer": "ann", "order": order })).await;
    }
    put_ok(&nimbus, json!({ "customer": "bob", "order": "2026-01" })).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = "/v1/tables/orders/items?partition=ann&sort_prefix=2026-&limit=2".to_owned();
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(nimbus.admin_url(&url)).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["key"]["sort"].as_str().unwrap().to_owned());
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["2026-01", "2026-02", "2026-03"]);
    let range =
        get_json(nimbus.admin_url("/v1/tables/orders/items?partition=ann&sort_from=2026-03")).await;
    assert_eq!(range["items"].as_array().unwrap().len(), 2);
    let scan = get_json(nimbus.admin_url("/v1/tables/orders/items")).await;
    assert_eq!(scan["items"].as_array().unwrap().len(), 5);

    let wrong = client()
        .delete(nimbus.admin_url("/v1/tables/orders/items/ann?sort=2026-01&if_version=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 409);
    let deleted = client()
        .delete(nimbus.admin_url("/v1/tables/orders/items/ann?sort=2026-01&if_version=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.json::<Value>().await.unwrap()["deleted"], true);
    let gone = client()
        .get(nimbus.admin_url("/v1/tables/orders/items/ann?sort=2026-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    // Bad input gets a 4xx that says what is wrong, and nothing is written.
    let no_key = put(&nimbus, json!({ "item": { "customer": "ann" } })).await;
    assert_eq!(no_key.status(), 400);
    assert!(no_key.text().await.unwrap().contains("`order`"));
    let oversize = put(
        &nimbus,
        json!({ "item": { "customer": "ann", "order": "x", "pad": "p".repeat(2000) } }),
    )
    .await;
    assert_eq!(oversize.status(), 413);
    let unknown = client()
        .get(nimbus.admin_url("/v1/tables/nope/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let stream = get_json(nimbus.admin_url("/v1/tables/orders/stream")).await;
    let kinds: Vec<&str> = stream["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "insert", "modify", "modify", "insert", "insert", "insert", "insert", "remove"
        ]
    );
}

#[tokio::test]
async fn a_stream_trigger_sees_every_write_once_and_in_order_per_key_across_lanes() {
    let app = stream_app("streamorder", "max_concurrency = 3\nbatch_size = 4", "");
    let nimbus = app.start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut writes = 0;
    for round in 0..6 {
        for customer in ["a", "b", "c", "d", "e"] {
            let item = json!({ "customer": customer, "order": "1", "round": round });
            let response = client()
                .post(nimbus.admin_url("/v1/tables/orders/items"))
                .header("traceparent", traceparent)
                .json(&json!({ "item": item }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            writes += 1;
        }
    }
    let seen = nimbus
        .stderr
        .wait_until("for every change record", |lines| {
            let seen = handled(lines);
            (seen.len() >= writes).then_some(seen)
        })
        .await;
    let mut seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), writes, "each write is one record, seen once");
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (seq, key, _, batch) in &seen {
        assert!(*batch <= 4);
        let previous = last.insert(key, *seq);
        assert!(previous.is_none_or(|p| p < *seq), "{key} out of order");
    }
    assert!(
        nimbus
            .stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("stream seq=")
                && l.contains("trace=00-4bf92f3577b34da6a3ce929d0e0e4736-")),
        "the writer's trace reaches the stream function"
    );
    let metrics = support::get_text(nimbus.admin_url("/metrics")).await;
    assert!(metrics.contains("nimbus_stream_records_total{table=\"orders\",function=\"consumer\",outcome=\"success\"} 30"), "{metrics}");
    assert!(
        metrics
            .contains("nimbus_stream_iterator_age_seconds{table=\"orders\",function=\"consumer\"}")
    );
}

#[tokio::test]
async fn a_partial_batch_failure_retries_from_the_lowest_failed_record_then_gives_it_up() {
    let app = stream_app(
        "streampartial",
        "batch_size = 10\nbatch_window_ms = 300\nreport_batch_item_failures = true\nmax_retry_attempts = 1\non_failure = \"queue:failed\"\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        "",
    );
    let nimbus = app.start().await;
    for (order, action) in [("1", "ok"), ("2", "fail"), ("3", "ok")] {
        put_ok(
            &nimbus,
            json!({ "customer": "ann", "order": order, "action": action }),
        )
        .await;
    }
    let failed = until("for the failure record", || async {
        let found = messages(&nimbus, "failed").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(failed[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "RetriesExhausted");
    assert_eq!(record["record"]["keys"]["sort"], "2");
    assert_eq!(record["attempts"], 2);
    let seen = nimbus
        .stderr
        .wait_until("for the last record alone", |lines| {
            let seen = handled(lines);
            seen.iter()
                .any(|(_, key, _, batch)| key == "ann/3" && *batch == 1)
                .then_some(seen)
        })
        .await;
    let first: Vec<_> = seen.iter().filter(|s| s.1 == "ann/1").collect();
    assert_eq!(
        first.len(),
        1,
        "the record before the failure is not redelivered"
    );
    let second: Vec<u32> = seen
        .iter()
        .filter(|s| s.1 == "ann/2")
        .map(|s| s.2)
        .collect();
    assert_eq!(second, [1, 2], "the failed record: first try and one retry");
    assert_eq!(messages(&nimbus, "failed").await.len(), 1);
}

#[tokio::test]
async fn bisecting_a_failing_batch_gives_up_only_the_poison_record() {
    let app = stream_app(
        "streambisect",
        "batch_size = 10\nbatch_window_ms = 300\nbisect_batch_on_error = true\nmax_retry_attempts = 0\non_failure = \"queue:failed\"",
        "",
    );
    let nimbus = app.start().await;
    for (order, action) in [("1", "ok"), ("2", "ok"), ("3", "error"), ("4", "ok")] {
        put_ok(
            &nimbus,
            json!({ "customer": "ann", "order": order, "action": action }),
        )
        .await;
    }
    let failed = until("for the failure record", || async {
        let found = messages(&nimbus, "failed").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(failed[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["record"]["keys"]["sort"], "3");
    nimbus
        .stderr
        .wait_until("for the record after the poison one", |lines| {
            handled(lines)
                .iter()
                .any(|(_, key, _, batch)| key == "ann/4" && *batch == 1)
                .then_some(())
        })
        .await;
    assert_eq!(messages(&nimbus, "failed").await.len(), 1);
}

#[tokio::test]
async fn the_checkpoint_survives_a_restart_and_starting_positions_pick_the_first_record() {
    let plain =
        TestApp::new("streamrestart").function("f", programs::TABLES, &format!("\n{TABLE}"));
    let data_dir = plain.data_dir();
    {
        let nimbus = plain.start().await;
        put_ok(&nimbus, json!({ "customer": "old", "order": "1" })).await;
        nimbus.terminate();
        let mut nimbus = nimbus;
        assert_eq!(nimbus.exit_code().await, Some(0));
    }
    let app = TestApp::new("streamrestart")
        .function("latest", programs::TABLES, &format!("\n{TABLE}"))
        .function("oldest", programs::TABLES, "")
        .route_kind(
            "stream",
            "table = \"orders\"\nfunction = \"latest\"\nstarting_position = \"latest\"",
        )
        .route_kind(
            "stream",
            "table = \"orders\"\nfunction = \"oldest\"\nstarting_position = \"oldest\"",
        );
    let manifest = app.write();
    let first = Nimbus::start(&manifest, &data_dir, &[]).await;
    first
        .stderr
        .wait_for("for the oldest reader to see the earlier write", |l| {
            l.contains("function=oldest") && l.contains("key=old/1")
        })
        .await;
    put_ok(&first, json!({ "customer": "new", "order": "1" })).await;
    first
        .stderr
        .wait_for_count("for both readers to see the new write", 2, |l| {
            l.contains("key=new/1")
        })
        .await;
    assert!(
        !first
            .stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("function=latest") && l.contains("key=old/1")),
        "a reader starting at the latest record skips earlier writes"
    );
    // A clean stop: the checkpoints of what was handled are stored.
    first.terminate();
    let mut first = first;
    assert_eq!(first.exit_code().await, Some(0));

    let second = Nimbus::start(&manifest, &data_dir, &[]).await;
    put_ok(&second, json!({ "customer": "after", "order": "1" })).await;
    second
        .stderr
        .wait_for_count(
            "for both readers to see the write after the restart",
            2,
            |l| l.contains("key=after/1"),
        )
        .await;
    let replayed = second
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("stream seq=") && !l.contains("key=after/1"))
        .count();
    assert_eq!(
        replayed, 0,
        "nothing handled before the restart comes again"
    );
}

#[tokio::test]
async fn records_older_than_max_event_age_go_to_on_failure_and_retention_expires_them() {
    let app = stream_app(
        "streamage",
        "max_retry_attempts = 2\nmax_event_age_s = 60\non_failure = \"queue:failed\"\nretry_backoff = { initial_ms = 200, max_ms = 200 }",
        "",
    )
    .function("spare", programs::TABLES, "");
    let manifest = app.write();
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &["--test-clock"]).await;
    put_ok(
        &nimbus,
        json!({ "customer": "ann", "order": "1", "action": "fail" }),
    )
    .await;
    nimbus
        .stderr
        .wait_for("for the first attempt", |l| {
            l.contains("key=ann/1") && l.contains("attempt=1")
        })
        .await;
    let advanced = client()
        .post(nimbus.admin_url("/v1/test/clock"))
        .json(&json!({ "advance_ms": 61_000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    let failed = until("for the failure record", || async {
        let found = messages(&nimbus, "failed").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(failed[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "EventAgeExceeded");

    // Retention is one day by default: the record goes once the clock
    // passes it.
    let stream = get_json(nimbus.admin_url("/v1/tables/orders/stream")).await;
    assert_eq!(stream["records"].as_array().unwrap().len(), 1);
    client()
        .post(nimbus.admin_url("/v1/test/clock"))
        .json(&json!({ "advance_ms": 86_400_000 }))
        .send()
        .await
        .unwrap();
    until("for the record to expire", || async {
        let stream = get_json(nimbus.admin_url("/v1/tables/orders/stream")).await;
        stream["records"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}

async fn invoke(nimbus: &Nimbus, function: &str, data: &str) {
    let response = client()
        .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke")))
        .header("content-type", "text/plain")
        .body(data.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn functions_use_tables_only_as_far_as_their_grants_allow() {
    let table = "[table.notes]\npartition_key = \"id\"\nstream = \"keys_only\"\n";
    let app = TestApp::new("tablegrants")
        .function(
            "writer",
            programs::TABLES,
            &format!("allow = [\"table:notes:write\", \"table:notes:read\"]\n\n{table}"),
        )
        .function("reader", programs::TABLES, "allow = [\"table:notes:read\"]")
        .function("stranger", programs::TABLES, "");
    let nimbus = app.start().await;

    invoke(&nimbus, "writer", r#"put:notes:{"id":"n1","text":"hi"}"#).await;
    nimbus
        .stderr
        .wait_for("for the write", |l| l.contains("table ok version 1"))
        .await;
    invoke(&nimbus, "writer", r#"put-if-absent:notes:{"id":"n1"}"#).await;
    nimbus
        .stderr
        .wait_for("for the conflict", |l| {
            l.contains("table error Error::Conflict(\"the item is at version 1\")")
        })
        .await;
    invoke(&nimbus, "reader", "get:notes:n1").await;
    nimbus
        .stderr
        .wait_for("for the read", |l| {
            l.contains(r#"table ok item {"id":"n1","text":"hi"} v1"#)
        })
        .await;

    invoke(&nimbus, "reader", r#"put:notes:{"id":"n2"}"#).await;
    nimbus
        .stderr
        .wait_for("for the write denial", |l| {
            l.contains("table error Error::AccessDenied(\"table:notes:write\")")
        })
        .await;
    nimbus
        .stderr
        .wait_for("for the audit line", |l| {
            l.contains("nimbus::audit")
                && l.contains("function=reader")
                && l.contains("table:notes:write")
        })
        .await;
    invoke(&nimbus, "stranger", "get:notes:n1").await;
    nimbus
        .stderr
        .wait_for("for the read denial", |l| {
            l.contains("table error Error::AccessDenied(\"table:notes:read\")")
        })
        .await;
    invoke(&nimbus, "reader", "delete:notes:n1").await;
    nimbus
        .stderr
        .wait_for("for the delete denial", |l| {
            l.contains("function=reader")
                && l.contains("table:notes:write")
                && l.contains("nimbus::audit")
        })
        .await;
    let stream = get_json(nimbus.admin_url("/v1/tables/notes/stream")).await;
    assert_eq!(
        stream["records"].as_array().unwrap().len(),
        1,
        "denied writes leave nothing"
    );
}

#[tokio::test]
async fn the_table_cli_puts_gets_queries_and_reads_the_stream() {
    let app = TestApp::new("tablecli").function("f", programs::TABLES, &format!("\n{TABLE}"));
    let nimbus = app.start().await;
    let admin = nimbus.admin_url("");
    let run = |args: &[&str]| {
        let mut all = vec!["table", "--admin", admin.trim_end_matches('/')];
        all.extend_from_slice(args);
        let output = support::nimbus(&all, app.dir.path());
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["put", "orders", r#"{"customer":"ann","order":"a 1"}"#]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["version"], 1);
    let (ok, _, err) = run(&[
        "put",
        "orders",
        r#"{"customer":"ann","order":"a 1"}"#,
        "--if-absent",
    ]);
    assert!(!ok);
    assert!(err.contains("the item is at version 1"), "{err}");
    run(&["put", "orders", r#"{"customer":"ann","order":"b"}"#]);
    let (ok, out, _) = run(&["get", "orders", "ann", "a 1"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["item"]["order"],
        "a 1"
    );
    let (_, out, _) = run(&["query", "orders", "ann", "--prefix", "a", "-o", "json"]);
    let items = serde_json::from_str::<Value>(&out).unwrap()["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    let (_, out, _) = run(&["stream", "orders"]);
    let stream: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stream["records"].as_array().unwrap().len(), 2);
    let (ok, out, _) = run(&["rm", "orders", "ann", "b"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["deleted"],
        true
    );
}
