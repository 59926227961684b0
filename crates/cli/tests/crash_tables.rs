//! The table crash test: writers put items through the API while a stream
//! trigger consumes the table's change stream, and the server is killed
//! with SIGKILL several times and restarted on the same data. Afterwards
//! every acknowledged write has exactly one change record, every record is
//! handled at least once, and within each run no key's records were seen
//! out of order.
//!
//! `NIMBUS_CRASH_ROUNDS` and `NIMBUS_CRASH_ACKS_PER_ROUND` make the same
//! harness run longer by hand.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{Nimbus, TestApp, client, get_json, until};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(seq, key)` of every change record one server's function handled, in
/// the order it handled them.
fn handled(nimbus: &Nimbus) -> Vec<(u64, String)> {
    nimbus
        .stderr
        .snapshot()
        .iter()
        .filter_map(|l| {
            let rest = l.split("stream seq=").nth(1)?;
            let seq = rest.split(' ').next()?.parse().ok()?;
            let key = rest.split("key=").nth(1)?.split(' ').next()?.to_owned();
            Some((seq, key))
        })
        .collect()
}

/// Within one run, each key's records arrive in increasing sequence order.
fn assert_in_order_per_key(seen: &[(u64, String)]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (seq, key) in seen {
        if let Some(previous) = last.insert(key, *seq) {
            assert!(previous < *seq, "{key}: record {seq} after {previous}");
        }
    }
}

/// The whole stream: `(key, version) -> seqs` of every change record.
async fn stream(nimbus: &Nimbus) -> HashMap<(String, u64), Vec<u64>> {
    let mut records: HashMap<(String, u64), Vec<u64>> = HashMap::new();
    let mut after = 0;
    loop {
        let page = get_json(nimbus.admin_url(&format!(
            "/v1/tables/orders/stream?after={after}&limit=1000"
        )))
        .await;
        let batch = page["records"].as_array().unwrap().clone();
        if batch.is_empty() {
            return records;
        }
        for r in &batch {
            let key = r["key"]["partition"].as_str().unwrap().to_owned();
            let seq = r["sequence"].as_u64().unwrap();
            records
                .entry((key, r["version"].as_u64().unwrap()))
                .or_default()
                .push(seq);
            after = seq;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_table_write_has_exactly_one_stream_record_across_sigkills() {
    let rounds = setting("NIMBUS_CRASH_ROUNDS", 3);
    let acks_per_round = setting("NIMBUS_CRASH_ACKS_PER_ROUND", 150);
    let app = TestApp::new("crashtables")
        .function(
            "consumer",
            programs::TABLES,
            "\n[table.orders]\npartition_key = \"customer\"\nstream = \"new_image\"",
        )
        .route_kind(
            "stream",
            "table = \"orders\"\nfunction = \"consumer\"\nbatch_size = 10\nmax_concurrency = 2\nstarting_position = \"oldest\"",
        );

    let next = Arc::new(AtomicUsize::new(0));
    // (key, version) of every acknowledged write.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut runs: Vec<Vec<(u64, String)>> = Vec::new();

    for _ in 0..rounds {
        let mut nimbus = app.start().await;
        let stop = Arc::new(AtomicBool::new(false));
        let round_start = acknowledged.lock().unwrap().len();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (url, next, acknowledged, stop) = (
                    nimbus.admin_url("/v1/tables/orders/items"),
                    next.clone(),
                    acknowledged.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let key = format!("k{}", n % 8);
                        let item = json!({ "item": { "customer": key, "n": n } });
                        let sent = client().post(&url).json(&item).send().await;
                        match sent {
                            Ok(response) if response.status() == 200 => {
                                let body: Value = response.json().await.unwrap();
                                let version = body["version"].as_u64().unwrap();
                                acknowledged.lock().unwrap().insert((key, version));
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        until("for this round's acknowledgements", || async {
            (acknowledged.lock().unwrap().len() >= round_start + acks_per_round).then_some(())
        })
        .await;
        // Killed mid-stream: writes and batches are in flight.
        nimbus.child.start_kill().unwrap();
        nimbus.child.wait().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.unwrap();
        }
        runs.push(handled(&nimbus));
    }

    // A last, clean run drains the stream.
    let nimbus = app.start().await;
    let records = stream(&nimbus).await;
    let all_seqs: HashSet<u64> = records.values().flatten().copied().collect();
    until("for every change record to be handled", || async {
        let seen: HashSet<u64> = runs
            .iter()
            .flatten()
            .map(|(seq, _)| *seq)
            .chain(handled(&nimbus).into_iter().map(|(seq, _)| seq))
            .collect();
        all_seqs.is_subset(&seen).then_some(())
    })
    .await;
    runs.push(handled(&nimbus));

    let acked = acknowledged.lock().unwrap().clone();
    let missing: Vec<_> = acked.iter().filter(|w| !records.contains_key(*w)).collect();
    let doubled: Vec<_> = records.iter().filter(|(_, seqs)| seqs.len() != 1).collect();
    let handled_total: usize = runs.iter().map(Vec::len).sum();
    println!(
        "table crash test: {rounds} SIGKILLs, {} acknowledged writes, {} change records, {handled_total} handled (duplicates {}), missing {}, doubled {}",
        acked.len(),
        records.len(),
        handled_total - all_seqs.len(),
        missing.len(),
        doubled.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged writes without a record: {missing:?}"
    );
    assert!(
        doubled.is_empty(),
        "writes with more than one record: {doubled:?}"
    );
    for run in &runs {
        assert_in_order_per_key(run);
    }
}
