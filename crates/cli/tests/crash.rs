//! The queue crash test: producers send through the API while a queue
//! trigger consumes, and the server is killed with SIGKILL several times and
//! restarted on the same data. Afterwards every acknowledged send must have
//! been delivered at least once (lost = 0) and nothing delivered that was
//! never sent (unexpected = 0); duplicates are allowed and reported. It
//! runs on the embedded SQLite store and on PostgreSQL.
//!
//! `NIMBUS_CRASH_ROUNDS` and `NIMBUS_CRASH_ACKS_PER_ROUND` make the same
//! harness run longer by hand.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use support::crash::{Writes, setting, store_name};
use support::{Nimbus, TestApp, client, until};

/// Bodies the worker printed as handled, from one server's log.
fn handled(nimbus: &Nimbus) -> Vec<String> {
    nimbus
        .stderr
        .snapshot()
        .iter()
        .filter_map(|l| l.split("handled data=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_across_sigkills() {
    run_queue_crash(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_across_sigkills_on_postgres() {
    let store = nimbus_test_postgres::server().fresh_url();
    run_queue_crash(&["--store", &store]).await;
}

/// The queue crash test on the store `store_args` choose.
async fn run_queue_crash(store_args: &[&str]) {
    let rounds = setting("NIMBUS_CRASH_ROUNDS", 3);
    let acks_per_round = setting("NIMBUS_CRASH_ACKS_PER_ROUND", 150);
    let app = TestApp::new("crash")
        .function("worker", programs::EVENTS, "timeout_ms = 2000")
        .function("hello", programs::HELLO, "[queue.jobs]\nvisibility_timeout_ms = 2000")
        .route_kind(
            "queue",
            "queue = \"jobs\"\nfunction = \"worker\"\nbatch_size = 10\nmax_concurrency = 2\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        );

    // Every body a producer tried to send, acknowledged or not.
    let attempted = Arc::new(Mutex::new(HashSet::new()));
    let sends = Writes::new();
    let mut delivered: Vec<String> = Vec::new();

    for _ in 0..rounds {
        let attempted = attempted.clone();
        let killed = sends
            .kill_under_load(&app, store_args, acks_per_round, move |admin, n| {
                let attempted = attempted.clone();
                async move {
                    let body = format!("m-{n}");
                    attempted.lock().unwrap().insert(body.clone());
                    let response = client()
                        .post(format!("{admin}/v1/queues/jobs/messages"))
                        .body(json!({ "body": body }).to_string())
                        .send()
                        .await
                        .ok()?;
                    (response.status() == 200).then_some(body)
                }
            })
            .await;
        delivered.extend(handled(&killed));
    }

    // A last, clean run drains the queue.
    let nimbus = app.start_with(store_args).await;
    let stats_url = nimbus.admin_url("/v1/queues/jobs");
    let acked: HashSet<String> = sends.acknowledged();
    until(
        "for every acknowledged message to be delivered and the queue drained",
        || async {
            let stats: Value = client()
                .get(&stats_url)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let seen: HashSet<String> = delivered.iter().cloned().chain(handled(&nimbus)).collect();
            let drained = stats["visible"] == 0 && stats["in_flight"] == 0 && stats["delayed"] == 0;
            (drained && acked.is_subset(&seen)).then_some(())
        },
    )
    .await;
    delivered.extend(handled(&nimbus));

    let attempted = attempted.lock().unwrap().clone();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for body in &delivered {
        *counts.entry(body.as_str()).or_default() += 1;
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|b| !counts.contains_key(b.as_str()))
        .collect();
    let unexpected: Vec<_> = counts.keys().filter(|b| !attempted.contains(**b)).collect();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "crash test ({}): {rounds} SIGKILLs, {} acknowledged, {} delivered, lost {}, unexpected {}, duplicates {duplicates}",
        store_name(store_args),
        acked.len(),
        counts.len(),
        lost.len(),
        unexpected.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert!(
        unexpected.is_empty(),
        "delivered but never sent: {unexpected:?}"
    );
}
