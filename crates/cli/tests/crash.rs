//! The queue crash test: producers send through the API while a queue
//! trigger consumes, and the server is killed with SIGKILL several times and
//! restarted on the same data. Afterwards every acknowledged send must have
//! been delivered at least once (lost = 0) and nothing delivered that was
//! never sent (unexpected = 0); duplicates are allowed and reported.
//!
//! `NIMBUS_CRASH_ROUNDS` and `NIMBUS_CRASH_ACKS_PER_ROUND` make the same
//! harness run longer by hand.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::{Nimbus, TestApp, client, until};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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
    let rounds = setting("NIMBUS_CRASH_ROUNDS", 3);
    let acks_per_round = setting("NIMBUS_CRASH_ACKS_PER_ROUND", 150);
    let app = TestApp::new("crash")
        .function("worker", programs::EVENTS, "timeout_ms = 2000")
        .function("hello", programs::HELLO, "[queue.jobs]\nvisibility_timeout_ms = 2000")
        .route_kind(
            "queue",
            "queue = \"jobs\"\nfunction = \"worker\"\nbatch_size = 10\nmax_concurrency = 2\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        );

    let next = Arc::new(AtomicUsize::new(0));
    let attempted = Arc::new(Mutex::new(HashSet::new()));
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut delivered: Vec<String> = Vec::new();

    for _ in 0..rounds {
        let mut nimbus = app.start().await;
        let stop = Arc::new(AtomicBool::new(false));
        let round_start = acknowledged.lock().unwrap().len();
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let (url, next, attempted, acknowledged, stop) = (
                    nimbus.admin_url("/v1/queues/jobs/messages"),
                    next.clone(),
                    attempted.clone(),
                    acknowledged.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let body = format!("m-{}", next.fetch_add(1, Ordering::SeqCst));
                        attempted.lock().unwrap().insert(body.clone());
                        let sent = client()
                            .post(&url)
                            .body(json!({ "body": body }).to_string())
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == 200 => {
                                acknowledged.lock().unwrap().insert(body);
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
        // Killed mid-stream: sends and batches are in flight.
        nimbus.child.start_kill().unwrap();
        nimbus.child.wait().await.unwrap();
        stop.store(true, Ordering::SeqCst);
        for producer in producers {
            producer.await.unwrap();
        }
        delivered.extend(handled(&nimbus));
    }

    // A last, clean run drains the queue.
    let nimbus = app.start().await;
    let stats_url = nimbus.admin_url("/v1/queues/jobs");
    let acked: HashSet<String> = acknowledged.lock().unwrap().clone();
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
        "crash test: {rounds} SIGKILLs, {} acknowledged, {} delivered, lost {}, unexpected {}, duplicates {duplicates}",
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
