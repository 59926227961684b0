//! The table crash test: writers put items through the API while a stream
//! trigger consumes the table's change stream, and the server is killed
//! with SIGKILL several times and restarted on the same data. Afterwards
//! every acknowledged write has exactly one change record, every record is
//! handled at least once, and within each run no key's records were seen
//! out of order. It runs on the embedded SQLite store and on PostgreSQL.
//!
//! `NIMBUS_CRASH_ROUNDS` and `NIMBUS_CRASH_ACKS_PER_ROUND` make the same
//! harness run longer by hand.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use support::crash::{Writes, setting, store_name};
use support::{Nimbus, TestApp, client, get_json, until};

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
    run_table_crash(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_table_write_has_exactly_one_stream_record_across_sigkills_on_postgres()
{
    let store = nimbus_test_postgres::server().fresh_url();
    run_table_crash(&["--store", &store]).await;
}

/// The table crash test on the store `store_args` choose.
async fn run_table_crash(store_args: &[&str]) {
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

    // (key, version) of every acknowledged write.
    let writes = Writes::new();
    let mut runs: Vec<Vec<(u64, String)>> = Vec::new();

    for _ in 0..rounds {
        let killed = writes
            .kill_under_load(&app, store_args, acks_per_round, |admin, n| async move {
                let key = format!("k{}", n % 8);
                let item = json!({ "item": { "customer": key, "n": n } });
                let response = client()
                    .post(format!("{admin}/v1/tables/orders/items"))
                    .json(&item)
                    .send()
                    .await
                    .ok()?;
                if response.status() != 200 {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                Some((key, body["version"].as_u64().unwrap()))
            })
            .await;
        runs.push(handled(&killed));
    }

    // A last, clean run drains the stream.
    let nimbus = app.start_with(store_args).await;
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

    let acked = writes.acknowledged();
    let missing: Vec<_> = acked.iter().filter(|w| !records.contains_key(*w)).collect();
    let doubled: Vec<_> = records.iter().filter(|(_, seqs)| seqs.len() != 1).collect();
    let handled_total: usize = runs.iter().map(Vec::len).sum();
    println!(
        "table crash test ({}): {rounds} SIGKILLs, {} acknowledged writes, {} change records, {handled_total} handled (duplicates {}), missing {}, doubled {}",
        store_name(store_args),
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
