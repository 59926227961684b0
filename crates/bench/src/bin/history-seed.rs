//! Writes N invocation records into a SQLite store (the console benchmark's
//! history): functions `f0`..`f9`, started over the last hour, mostly
//! successes with some errors, a few output lines each.
//!
//! usage: history-seed DB_PATH N

use nimbus_store::{HistoryStore as _, InvocationRecord, LogLine, SpanRecord, SystemClock};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: history-seed DB_PATH N");
    let n: u64 = args.next().and_then(|n| n.parse().ok()).expect("N");
    let store = SqliteStore::open(
        &SqliteOptions {
            path: path.into(),
            durability: Durability::Fsync,
        },
        Arc::new(SystemClock),
    )
    .expect("open the store");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut written = 0;
    while written < n {
        let batch: Vec<InvocationRecord> = (written..(written + 1000).min(n))
            .map(|i| {
                let started_at = now - 3_600_000 + i * 3_600_000 / n;
                let failed = i % 17 == 0;
                InvocationRecord {
                    // UUIDv7-like: ids sort by start time.
                    id: format!("{started_at:012x}-{i:016x}"),
                    function: format!("f{}", i % 10),
                    trigger: "http".into(),
                    source: "/seed".into(),
                    started_at,
                    duration_ms: i % 40,
                    outcome: if failed { "error" } else { "success" }.into(),
                    error: failed.then(|| "the handler returned an error".into()),
                    attempt: 1,
                    trace_id: Some(format!("{i:032x}")),
                    logs: (0..3)
                        .map(|l| LogLine {
                            stream: "stdout".into(),
                            text: format!("line {l} of invocation {i}"),
                        })
                        .collect(),
                    logs_truncated: false,
                    node: Some("seed".into()),
                    memory_mb: 128,
                    billed_ms: i % 40 + 1,
                    outbound_bytes: 0,
                    // An invocation span and one host call under it, as an
                    // HTTP function that sends a message leaves.
                    spans: vec![
                        SpanRecord {
                            span_id: format!("{:016x}", 2 * i + 1),
                            parent_id: None,
                            name: format!("invoke f{}", i % 10),
                            kind: "internal".into(),
                            start_us: started_at * 1000,
                            duration_us: (i % 40) * 1000,
                            attributes: vec![("faas.invocation_id".into(), i.to_string())],
                            error: None,
                        },
                        SpanRecord {
                            span_id: format!("{:016x}", 2 * i + 2),
                            parent_id: Some(format!("{:016x}", 2 * i + 1)),
                            name: "send orders".into(),
                            kind: "producer".into(),
                            start_us: started_at * 1000 + 100,
                            duration_us: 300,
                            attributes: Vec::new(),
                            error: None,
                        },
                    ],
                    spans_dropped: 0,
                }
            })
            .collect();
        written += batch.len() as u64;
        store
            .record_invocations(batch)
            .await
            .expect("write records");
    }
    println!("wrote {written} invocation records");
}
