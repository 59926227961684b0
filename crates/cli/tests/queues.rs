//! Queues through the real server: the `/v1` API, the `nimbus queue` and
//! `nimbus dlq` verbs, durability across restarts, and the OpenAPI document.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use support::{Nimbus, TestApp, client, nimbus};

const QUEUES: &str = r#"
[queue.jobs]
visibility_timeout_ms = 60000
max_receive_count = 2
dead_letter_queue = "jobs-dlq"

[queue.jobs-dlq]

[queue.tiny]
max_message_bytes = 8

[queue.later]
delay_ms = 600000
"#;

fn app(name: &str) -> TestApp {
    TestApp::new(name).function("hello", programs::HELLO, QUEUES)
}

async fn call(nimbus: &Nimbus, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = nimbus.admin_url(path);
    let mut request = client().request(method.parse().unwrap(), url);
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

async fn send(nimbus: &Nimbus, queue: &str, body: &str) -> String {
    let (status, sent) = call(
        nimbus,
        "POST",
        &format!("/v1/queues/{queue}/messages"),
        Some(json!({ "body": body })),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    sent["message_id"].as_str().unwrap().to_owned()
}

async fn receive(nimbus: &Nimbus, queue: &str, request: Value) -> Vec<Value> {
    let (status, got) = call(
        nimbus,
        "POST",
        &format!("/v1/queues/{queue}/receive"),
        Some(request),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    got["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn declared_queues_are_listed_with_their_settings() {
    let nimbus = app("listing").start().await;
    let (status, list) = call(&nimbus, "GET", "/v1/queues", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs", "jobs-dlq", "later", "tiny"]);
    let (_, jobs) = call(&nimbus, "GET", "/v1/queues/jobs", None).await;
    assert_eq!(jobs["visibility_timeout_ms"], 60000);
    assert_eq!(jobs["dead_letter_queue"], "jobs-dlq");
    assert_eq!(jobs["visible"], 0);
}

#[tokio::test]
async fn a_message_is_sent_leased_and_deleted_with_its_current_receipt() {
    let nimbus = app("lifecycle").start().await;
    let id = send(&nimbus, "jobs", "hello queue").await;
    let got = receive(&nimbus, "jobs", json!({ "max_messages": 10 })).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message_id"], id.as_str());
    assert_eq!(got[0]["body"], "hello queue");
    assert_eq!(got[0]["receive_count"], 1);
    // Leased: nobody else sees it.
    assert!(receive(&nimbus, "jobs", json!({})).await.is_empty());
    let (_, stats) = call(&nimbus, "GET", "/v1/queues/jobs", None).await;
    assert_eq!(
        (stats["visible"].as_u64(), stats["in_flight"].as_u64()),
        (Some(0), Some(1))
    );

    let receipt = got[0]["receipt_handle"].as_str().unwrap();
    let path = format!("/v1/queues/jobs/receipts/{receipt}");
    assert_eq!(call(&nimbus, "DELETE", &path, None).await.0, 204);
    let (status, stale) = call(&nimbus, "DELETE", &path, None).await;
    assert_eq!(status, 409);
    assert!(
        stale["error"].as_str().unwrap().contains("receipt handle"),
        "{stale}"
    );
}

#[tokio::test]
async fn change_visibility_returns_a_message_early() {
    let nimbus = app("visibility").start().await;
    send(&nimbus, "jobs", "again").await;
    let got = receive(&nimbus, "jobs", json!({})).await;
    let receipt = got[0]["receipt_handle"].as_str().unwrap();
    let (status, _) = call(
        &nimbus,
        "POST",
        &format!("/v1/queues/jobs/receipts/{receipt}/visibility"),
        Some(json!({ "timeout_ms": 0 })),
    )
    .await;
    assert_eq!(status, 204);
    let again = receive(&nimbus, "jobs", json!({})).await;
    assert_eq!(again[0]["receive_count"], 2);
}

#[tokio::test]
async fn a_batch_stores_a_repeated_dedup_id_once() {
    let nimbus = app("dedup").start().await;
    let batch = json!({ "messages": [
        { "body": "a", "dedup_id": "order-7" },
        { "body": "b", "dedup_id": "order-7" },
        { "body_base64": "//79", "attributes": { "traceparent": "00-abc-def-01" } },
    ]});
    let (status, sent) = call(
        &nimbus,
        "POST",
        "/v1/queues/jobs/messages/batch",
        Some(batch),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let results = sent["results"].as_array().unwrap();
    assert_eq!(results[1]["deduplicated"], true);
    assert_eq!(results[1]["message_id"], results[0]["message_id"]);
    let got = receive(&nimbus, "jobs", json!({ "max_messages": 10 })).await;
    assert_eq!(got.len(), 2);
    // Bytes that are not UTF-8 come back as base64, attributes intact.
    assert_eq!(got[1]["body_base64"], "//79");
    assert_eq!(got[1]["attributes"]["traceparent"], "00-abc-def-01");
}

#[tokio::test]
async fn receive_waits_for_a_message_when_asked_to() {
    let nimbus = app("longpoll").start().await;
    assert!(
        receive(&nimbus, "jobs", json!({ "wait_ms": 200 }))
            .await
            .is_empty()
    );
    let waiting = {
        let url = nimbus.admin_url("/v1/queues/jobs/receive");
        tokio::spawn(async move {
            client()
                .post(url)
                .body(json!({ "wait_ms": 20000 }).to_string())
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    send(&nimbus, "jobs", "worth the wait").await;
    let got = waiting.await.unwrap();
    assert_eq!(got["messages"][0]["body"], "worth the wait");
}

#[tokio::test]
async fn a_poison_message_reaches_the_dlq_after_max_receive_count_and_redrives_back() {
    let nimbus = app("poison").start().await;
    let id = send(&nimbus, "jobs", "poison").await;
    for attempt in 1..=2 {
        let got = receive(&nimbus, "jobs", json!({ "visibility_timeout_ms": 0 })).await;
        assert_eq!(got[0]["receive_count"], attempt);
    }
    assert!(receive(&nimbus, "jobs", json!({})).await.is_empty());

    let (_, dlqs) = call(&nimbus, "GET", "/v1/dead-letter-queues", None).await;
    assert_eq!(dlqs["dead_letter_queues"][0]["name"], "jobs-dlq");
    assert_eq!(
        dlqs["dead_letter_queues"][0]["source_queues"],
        json!(["jobs"])
    );
    assert_eq!(dlqs["dead_letter_queues"][0]["depth"], 1);
    let (_, dead) = call(&nimbus, "GET", "/v1/queues/jobs-dlq/messages", None).await;
    assert_eq!(dead["messages"][0]["message_id"], id.as_str());
    assert_eq!(dead["messages"][0]["source_queue"], "jobs");
    assert_eq!(dead["messages"][0]["receive_count"], 2);

    let (status, moved) = call(
        &nimbus,
        "POST",
        "/v1/queues/jobs-dlq/redrive",
        Some(json!({})),
    )
    .await;
    assert_eq!((status, moved["moved"].as_u64()), (200, Some(1)));
    let back = receive(&nimbus, "jobs", json!({})).await;
    assert_eq!(back[0]["message_id"], id.as_str());
    assert_eq!(back[0]["receive_count"], 1);
}

#[tokio::test]
async fn bad_requests_get_a_4xx_that_says_what_is_wrong_and_lose_nothing() {
    let nimbus = app("hostile").start().await;
    send(&nimbus, "jobs", "precious").await;
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!("not an object"),
            400,
            "invalid JSON body",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({ "bdy": "x" }),
            400,
            "unknown field `bdy`",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({ "body": "x", "body_base64": "eA==" }),
            400,
            "exactly one of",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({ "body_base64": "not base64!" }),
            400,
            "not valid base64",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({ "body": 5 }),
            400,
            "invalid type",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages",
            json!({ "body": "x", "delay_ms": 900001 }),
            400,
            "delay_ms",
        ),
        (
            "POST",
            "/v1/queues/tiny/messages",
            json!({ "body": "nine char" }),
            413,
            "limit of 8 bytes",
        ),
        (
            "POST",
            "/v1/queues/nope/messages",
            json!({ "body": "x" }),
            404,
            "queue `nope` does not exist",
        ),
        (
            "POST",
            "/v1/queues/jobs/messages/batch",
            json!({ "messages": [] }),
            400,
            "1 to 10 messages",
        ),
        (
            "POST",
            "/v1/queues/nope/receive",
            json!({ "wait_ms": 20000 }),
            404,
            "queue `nope` does not exist",
        ),
        (
            "POST",
            "/v1/queues/jobs/receive",
            json!({ "max_messages": 11 }),
            400,
            "`max_messages` must be 1 to 10",
        ),
        (
            "POST",
            "/v1/queues/jobs/receive",
            json!({ "wait_ms": 20001 }),
            400,
            "`wait_ms`",
        ),
        (
            "GET",
            "/v1/queues/jobs/messages?limit=0",
            Value::Null,
            400,
            "`limit`",
        ),
        ("GET", "/v1/nothing", Value::Null, 404, "no admin endpoint"),
    ];
    for (method, path, body, status, fragment) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = call(&nimbus, method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(fragment),
            "{method} {path}: {error:?} lacks {fragment:?}"
        );
    }
    // A body over the API's limit is refused before it is read in full.
    let oversize = client()
        .post(nimbus.admin_url("/v1/queues/jobs/messages"))
        .body(vec![b'x'; 17 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);
    // Malformed bytes that are not JSON at all.
    let raw = client()
        .post(nimbus.admin_url("/v1/queues/jobs/messages"))
        .body(vec![0xff, 0xfe, b'{'])
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // Invalid UTF-8 inside a JSON string, and nesting deep enough to exhaust
    // a recursive parser (refused at the first value of the wrong shape, and
    // past 128 levels in any case): both 400 with a reason.
    let deep = format!(
        "{{\"body\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (body, fragment) in [
        (b"{\"body\": \"\xff\xfe\"}".to_vec(), "invalid unicode"),
        (deep.into_bytes(), "invalid JSON body"),
        ("[".repeat(100_000).into_bytes(), "invalid JSON body"),
    ] {
        let response = client()
            .post(nimbus.admin_url("/v1/queues/jobs/messages"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let answer: Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
    }
    // The server is up and the message accepted before is still there.
    assert_eq!(
        receive(&nimbus, "jobs", json!({})).await[0]["body"],
        "precious"
    );
}

#[tokio::test]
async fn attributes_and_dedup_ids_are_held_to_sqs_limits_and_a_refused_batch_stores_nothing() {
    let nimbus = app("message-limits").start().await;
    let eight_mib = "x".repeat(8 << 20);
    let eleven: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("a{i}"), json!("v"))).collect();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        // Attributes count toward max_message_bytes (8 on `tiny`).
        (
            "tiny",
            json!({ "body": "1234", "attributes": { "ab": "cde" } }),
            413,
            "message is 9 bytes, over the queue's limit of 8 bytes",
        ),
        (
            "jobs",
            json!({ "body": "x", "attributes": { "big": eight_mib } }),
            413,
            "over the queue's limit of 262144 bytes",
        ),
        (
            "jobs",
            json!({ "body": "x", "dedup_id": eight_mib }),
            400,
            "`dedup_id` is 8388608 bytes, over the limit of 128",
        ),
        (
            "jobs",
            json!({ "body": "x", "dedup_id": "has space" }),
            400,
            "`dedup_id` `has space` may hold only ASCII letters, digits and punctuation",
        ),
        (
            "jobs",
            json!({ "body": "x", "dedup_id": "" }),
            400,
            "`dedup_id` is empty",
        ),
        (
            "jobs",
            json!({ "body": "x", "attributes": eleven }),
            400,
            "11 attributes, over the limit of 10",
        ),
        (
            "jobs",
            json!({ "body": "x", "attributes": { "bad name": "v" } }),
            400,
            "attribute name `bad name` may hold only",
        ),
        (
            "jobs",
            json!({ "body": "x", "attributes": { "a..b": "v" } }),
            400,
            "attribute name `a..b` may not",
        ),
        (
            "jobs",
            json!({ "body": "x", "attributes": { "n".repeat(257): "v" } }),
            400,
            "is 257 bytes, over the limit of 256",
        ),
    ];
    for (queue, message, status, fragment) in &cases {
        let (got, answer) = call(
            &nimbus,
            "POST",
            &format!("/v1/queues/{queue}/messages"),
            Some(message.clone()),
        )
        .await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, *status, "{fragment}: {error}");
        assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
        // In a batch, one bad message refuses the batch.
        let (got, answer) = call(
            &nimbus,
            "POST",
            &format!("/v1/queues/{queue}/messages/batch"),
            Some(json!({ "messages": [{ "body": "ok" }, message] })),
        )
        .await;
        assert_eq!(got, *status, "batch {fragment}: {answer}");
    }
    for queue in ["jobs", "tiny"] {
        let (_, stats) = call(&nimbus, "GET", &format!("/v1/queues/{queue}"), None).await;
        assert_eq!(stats["visible"], 0, "{queue}: {stats}");
    }

    // At the limits, messages go through: 4 + 2 + 2 = 8 bytes on `tiny`,
    // ten attributes, a 128-character id of every punctuation mark, and
    // an empty body (allowed, unlike SQS).
    let punctuation: String = (0x21u8..=0x7e)
        .map(char::from)
        .filter(|c| !c.is_ascii_alphanumeric())
        .collect();
    let dedup_id = format!("{punctuation}{}", "d".repeat(128 - punctuation.len()));
    let ten: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("a.b-c_{i}"), json!("v")))
        .collect();
    for (queue, message) in [
        (
            "tiny",
            json!({ "body": "1234", "attributes": { "ab": "cd" } }),
        ),
        ("jobs", json!({ "body": "x", "attributes": ten })),
        ("jobs", json!({ "body": "x", "dedup_id": dedup_id })),
        ("jobs", json!({ "body": "" })),
    ] {
        let (got, answer) = call(
            &nimbus,
            "POST",
            &format!("/v1/queues/{queue}/messages"),
            Some(message.clone()),
        )
        .await;
        assert_eq!(got, 200, "{message}: {answer}");
    }
    let got = receive(&nimbus, "tiny", json!({})).await;
    assert_eq!(got[0]["attributes"], json!({ "ab": "cd" }));
    let got = receive(&nimbus, "jobs", json!({ "max_messages": 10 })).await;
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["x", "x", ""]);
}

#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let nimbus = app("openapi").start().await;
    let (status, doc) = call(&nimbus, "GET", "/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 13);
    for (path, methods) in paths {
        let concrete = path
            .replace("{queue}", "jobs")
            .replace("{receipt}", "no-such-receipt")
            .replace("{message_id}", "no-such-message")
            .replace("{name}", "hello");
        for method in methods.as_object().unwrap().keys() {
            let body =
                (method == "post").then(|| json!({ "body": "x", "timeout_ms": 0 }).to_string());
            let mut request = client().request(
                method.to_uppercase().parse().unwrap(),
                nimbus.admin_url(&concrete),
            );
            if let Some(body) = body {
                request = request.body(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !text.contains("no admin endpoint"),
                "{method} {path} is documented but not routed"
            );
        }
    }
}

/// As with the other `/v1` writes, a send continues the caller's trace: a
/// valid `traceparent` header rides on each message (unless the message
/// sets its own), where a queue trigger's function picks it up.
#[tokio::test]
async fn a_sent_message_carries_the_callers_trace_context() {
    let nimbus = app("traced-send").start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let sends = [
        (
            "/v1/queues/jobs/messages",
            json!({ "body": "one" }),
            traceparent,
        ),
        (
            "/v1/queues/jobs/messages/batch",
            json!({ "messages": [{ "body": "two" }] }),
            traceparent,
        ),
        (
            "/v1/queues/jobs/messages",
            json!({ "body": "own", "attributes": { "traceparent": own } }),
            traceparent,
        ),
        (
            "/v1/queues/jobs/messages",
            json!({ "body": "none" }),
            "garbage",
        ),
    ];
    for (path, body, header) in sends {
        let response = client()
            .post(nimbus.admin_url(path))
            .header("traceparent", header)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let got = receive(&nimbus, "jobs", json!({ "max_messages": 10 })).await;
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|m| {
            (
                m["body"].as_str().unwrap(),
                m["attributes"]["traceparent"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("one", Some(traceparent)),
            ("two", Some(traceparent)),
            ("own", Some(own)),
            ("none", None),
        ]
    );
}

/// An app with every kind of listing: queues, a table with a stream, a
/// bucket and a function.
fn app_with_listings(name: &str) -> TestApp {
    let extra = format!(
        "{QUEUES}\n[table.orders]\npartition_key = \"customer\"\nstream = \"keys_only\"\n\n[bucket.files]\n"
    );
    TestApp::new(name).function("hello", programs::HELLO, &extra)
}

fn concrete(path: &str) -> String {
    path.replace("{queue}", "jobs")
        .replace("{receipt}", "no-such-receipt")
        .replace("{message_id}", "no-such-message")
        .replace("{table}", "orders")
        .replace("{bucket}", "files")
        .replace("{key}", "k")
        .replace("{name}", "hello")
}

/// One rule for list limits, read from the OpenAPI document: every listing
/// takes the range it documents and refuses a value outside it with a 400
/// naming the parameter; none clamps in silence.
#[tokio::test]
async fn every_listing_refuses_a_limit_outside_its_documented_range() {
    let nimbus = app_with_listings("list-limits").start().await;
    let (_, doc) = call(&nimbus, "GET", "/v1/openapi.json", None).await;
    let mut checked = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let Some(parameters) = methods["get"]["parameters"].as_array() else {
            continue;
        };
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap();
            if !(parameter["in"] == "query" && ["limit", "next"].contains(&name)) {
                continue;
            }
            let schema = &parameter["schema"];
            assert_eq!(schema["minimum"], 1, "{path} {name}");
            let max = schema["maximum"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path} documents no maximum for `{name}`"));
            for value in [0, max + 1, 4_000_000_000] {
                let url = format!("{}?{name}={value}", concrete(path));
                let (status, answer) = call(&nimbus, "GET", &url, None).await;
                assert_eq!(status, 400, "{url}: {answer}");
                let error = answer["error"].as_str().unwrap();
                assert!(
                    error.contains(&format!("`{name}` must be from 1 to {max}")),
                    "{url}: {error}"
                );
            }
            for value in [1, max] {
                let url = format!("{}?{name}={value}", concrete(path));
                let (status, answer) = call(&nimbus, "GET", &url, None).await;
                assert_eq!(status, 200, "{url}: {answer}");
            }
            checked.push(path.clone());
        }
    }
    for listing in [
        "/v1/tables/{table}/stream",
        "/v1/tables/{table}/items",
        "/v1/queues/{queue}/messages",
    ] {
        assert!(
            checked.iter().any(|p| p == listing),
            "{listing}: {checked:?}"
        );
    }
}

/// Every endpoint the OpenAPI document gives a JSON body refuses a body of
/// another content type with 415 and does nothing; the endpoints that take
/// raw bytes do not.
#[tokio::test]
async fn json_endpoints_refuse_another_content_type_with_415() {
    let nimbus = app_with_listings("media-types").start().await;
    send(&nimbus, "jobs", "precious").await;
    let (_, doc) = call(&nimbus, "GET", "/v1/openapi.json", None).await;
    let mut json_endpoints = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let Some(content) = operation["requestBody"]["content"].as_object() else {
                continue;
            };
            let takes_json = content.contains_key("application/json");
            let url = nimbus.admin_url(&concrete(path));
            for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
                let response = client()
                    .request(method.to_uppercase().parse().unwrap(), &url)
                    .header("content-type", content_type)
                    .body(r#"{"body": "x", "timeout_ms": 0, "messages": [{"body": "x"}]}"#)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if takes_json {
                    assert_eq!(status, 415, "{method} {path} {content_type}: {answer}");
                    let error = answer["error"].as_str().unwrap();
                    assert!(
                        error.contains("application/json") && error.contains(content_type),
                        "{error}"
                    );
                } else {
                    assert_ne!(status, 415, "{method} {path} takes raw bytes");
                }
            }
            json_endpoints += usize::from(takes_json);
        }
    }
    assert!(json_endpoints >= 7, "{json_endpoints}");
    // Nothing was sent or received by the refused requests.
    let (_, stats) = call(&nimbus, "GET", "/v1/queues/jobs", None).await;
    assert_eq!(
        (stats["visible"].as_u64(), stats["in_flight"].as_u64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn acknowledged_messages_survive_a_sigkill() {
    let app = app("crash");
    let mut nimbus = app.start().await;
    let id = send(&nimbus, "jobs", "must not be lost").await;
    nimbus.child.start_kill().unwrap();
    nimbus.child.wait().await.unwrap();

    let nimbus = app.start().await;
    let got = receive(&nimbus, "jobs", json!({})).await;
    assert_eq!(got[0]["message_id"], id.as_str());
}

#[tokio::test]
async fn relaxed_durability_must_be_asked_for_and_is_logged() {
    let app = app("relaxed");
    let nimbus = app.start_with(&["--store-durability", "relaxed"]).await;
    nimbus
        .stderr
        .wait_for("warning about relaxed durability", |l| {
            l.contains("durability is relaxed")
        })
        .await;
    let strict = app.start().await;
    assert!(!strict.stderr.text().contains("durability is relaxed"));
}

#[tokio::test]
async fn the_queue_and_dlq_verbs_drive_the_api() {
    let server = app("verbs").start().await;
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec!["--admin", server.admin.as_str()];
        all.splice(0..0, args.iter().copied());
        let output = nimbus(&all, dir.path());
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let sent: Value =
        serde_json::from_str(&cli(&["queue", "send", "jobs", "--data", "from the cli"])).unwrap();
    assert_eq!(sent["deduplicated"], false);
    let stats: Value =
        serde_json::from_str(&cli(&["queue", "stats", "jobs", "-o", "json"])).unwrap();
    assert_eq!(stats["visible"], 1);

    let line = cli(&["queue", "receive", "jobs", "--visibility-timeout-ms", "0"]);
    let received: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(received["body"], "from the cli");
    cli(&["queue", "receive", "jobs", "--visibility-timeout-ms", "0"]);
    // Two receives used up max_receive_count: the next one dead-letters it.
    assert_eq!(cli(&["queue", "receive", "jobs"]), "");

    let dlqs: Value = serde_json::from_str(&cli(&["dlq", "list", "-o", "json"])).unwrap();
    assert_eq!(dlqs["dead_letter_queues"][0]["depth"], 1);
    let shown: Value =
        serde_json::from_str(&cli(&["dlq", "show", "jobs-dlq", "-o", "json"])).unwrap();
    assert_eq!(shown["messages"][0]["body"], "from the cli");
    let moved: Value = serde_json::from_str(&cli(&["dlq", "redrive", "jobs-dlq"])).unwrap();
    assert_eq!(moved["moved"], 1);

    let line = cli(&["queue", "receive", "jobs", "--delete"]);
    assert!(line.contains("from the cli"));
    let purged: Value = serde_json::from_str(&cli(&["queue", "purge", "jobs"])).unwrap();
    assert_eq!(purged["purged"], 0);

    // Errors from the API reach the user with their status.
    let output = nimbus(
        &["queue", "stats", "nope", "--admin", server.admin.as_str()],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("queue `nope` does not exist (404 Not Found)")
    );
}

#[tokio::test]
async fn delayed_messages_wait_by_the_queue_setting_or_the_send() {
    let nimbus = app("delays").start().await;
    send(&nimbus, "later", "queue delay").await;
    let (status, _) = call(
        &nimbus,
        "POST",
        "/v1/queues/jobs/messages",
        Some(json!({ "body": "send delay", "delay_ms": 600000 })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &nimbus,
        "POST",
        "/v1/queues/later/messages",
        Some(json!({ "body": "no delay", "delay_ms": 0 })),
    )
    .await;
    assert_eq!(status, 200);
    for queue in ["later", "jobs"] {
        let (_, stats) = call(&nimbus, "GET", &format!("/v1/queues/{queue}"), None).await;
        assert_eq!(stats["delayed"], 1, "{queue}: {stats}");
    }
    // Only the message sent with delay_ms = 0 can be received now.
    let got = receive(&nimbus, "later", json!({ "max_messages": 10 })).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["body"], "no delay");
    assert!(
        receive(&nimbus, "jobs", json!({ "max_messages": 10 }))
            .await
            .is_empty()
    );
}
