//! Usage metering through the real server: what `/v1/usage` and `nimbus
//! usage` report is exactly what the invocations made add up to (their
//! records' billed milliseconds, memory and outbound bytes), and it survives
//! a restart.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{Nimbus, TestApp, client, until};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An upstream on loopback that reads each request's body (by its
/// content-length) and answers 200.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 8192];
                let (head_end, length) = loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (end + 4, length);
                    }
                };
                while seen.len() < head_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    addr
}

async fn admin_get(nimbus: &Nimbus, path: &str) -> Value {
    let response = client()
        .get(nimbus.admin_url(path))
        .bearer_auth(support::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn usage_is_exactly_what_the_invocations_add_up_to_and_survives_a_restart() {
    let upstream = upstream().await;
    let app = TestApp::new("metered")
        .function("hello", programs::HELLO, "memory_mb = 64")
        .route("/hello/{name}", "hello", "")
        .function(
            "fetch",
            programs::FETCH,
            "memory_mb = 96\nallowed_outbound_hosts = [\"http://127.0.0.1:*\"]\nallowed_private_hosts = [\"http://127.0.0.1:*\"]",
        )
        .route("/fetch", "fetch", "methods = [\"POST\"]");
    let manifest = app.write();
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &[]).await;
    let http = client();
    for i in 0..7 {
        let answer = http
            .get(nimbus.url(&format!("/hello/n{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    for bytes in [1000, 5000, 12_345] {
        let answer = http
            .post(nimbus.url(&format!("/fetch?send_bytes={bytes}")))
            .body(format!("http://{upstream}/in"))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert_eq!(status, 200, "{}", answer.text().await.unwrap());
    }

    // Records reach the store in batches: wait until all ten are there.
    let records = until("the ten invocation records", || async {
        let page = admin_get(&nimbus, "/v1/invocations?limit=100").await;
        let records = page["invocations"].as_array().cloned().unwrap_or_default();
        (records.len() == 10).then_some(records)
    })
    .await;
    let usage = admin_get(&nimbus, "/v1/usage").await;
    let rows = usage["usage"].as_array().unwrap();
    for function in ["hello", "fetch"] {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["function"] == function)
            .collect();
        let sum = |field: &str| mine.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
        let row: Vec<&Value> = rows.iter().filter(|r| r["function"] == function).collect();
        let total = |field: &str| row.iter().map(|r| r[field].as_u64().unwrap()).sum::<u64>();
        let memory = if function == "hello" { 64 } else { 96 };
        assert_eq!(total("invocations"), mine.len() as u64, "{function}");
        assert_eq!(total("billed_ms"), sum("billed_ms"), "{function}");
        assert!(
            mine.iter()
                .all(|r| r["billed_ms"].as_u64().unwrap() >= 1 && r["memory_mb"] == memory)
        );
        assert_eq!(total("mb_ms"), memory * sum("billed_ms"), "{function}");
        assert_eq!(total("outbound_bytes"), sum("outbound_bytes"), "{function}");
    }
    // What the fetch function sent, to the byte (its rows summed: the
    // requests may straddle an hour); hello sent nothing.
    let sent = |function: &str| {
        rows.iter()
            .filter(|r| r["function"] == function)
            .map(|r| r["outbound_bytes"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sent("fetch"), 1000 + 5000 + 12_345);
    assert_eq!(sent("hello"), 0);
    assert_eq!(usage["total"]["invocations"], 10);
    // The node's metric families say the same.
    let metrics = support::get_text(nimbus.admin_url("/metrics")).await;
    assert!(
        metrics.contains("nimbus_usage_outbound_bytes_total{function=\"fetch\"} 18345"),
        "{metrics}"
    );
    let billed_s: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("nimbus_usage_billed_seconds_total{function=\"hello\"} "))
        .unwrap()
        .parse()
        .unwrap();
    let hello_ms: u64 = records
        .iter()
        .filter(|r| r["function"] == "hello")
        .map(|r| r["billed_ms"].as_u64().unwrap())
        .sum();
    assert_eq!((billed_s * 1000.0).round() as u64, hello_ms);

    // The CLI: a table with a total line, and CSV.
    let table = support::cli(&nimbus, &["usage"]).await;
    let text = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(text.starts_with("HOUR "), "{text}");
    let total_line = text.lines().last().unwrap();
    assert!(
        total_line.starts_with("total") && total_line.contains(" 10 "),
        "{text}"
    );
    let csv = support::cli(&nimbus, &["usage", "--csv", "--function", "fetch"]).await;
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("hour,function,invocations,billed_ms,mb_ms,gb_seconds,outbound_bytes")
    );
    let (mut invocations, mut outbound) = (0, 0);
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[1], "fetch");
        invocations += fields[2].parse::<u64>().unwrap();
        outbound += fields[6].parse::<u64>().unwrap();
    }
    assert_eq!((invocations, outbound), (3, 18_345));

    // Kept in the store: the same after a restart.
    nimbus.terminate();
    let mut nimbus = nimbus;
    assert_eq!(nimbus.exit_code().await, Some(0));
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &[]).await;
    assert_eq!(
        admin_get(&nimbus, "/v1/usage").await["usage"],
        usage["usage"]
    );
}
