//! The object crash test: uploaders put objects through the API while an
//! object trigger consumes their events, and the server is killed with
//! SIGKILL several times and restarted on the same data. Afterwards every
//! acknowledged upload must be visible and must have had its created event
//! delivered at least once (lost = 0), and no blob may be left that no
//! object refers to (interrupted uploads are swept at start). It runs on
//! the embedded SQLite store and on PostgreSQL (object bytes stay in the
//! data directory either way).
//!
//! `NIMBUS_CRASH_ROUNDS` and `NIMBUS_CRASH_ACKS_PER_ROUND` make the same
//! harness run longer by hand.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use std::collections::HashSet;
use support::crash::{Writes, setting, store_name};
use support::{Nimbus, TestApp, client, get_json, until};

/// Keys whose events the worker printed, from one server's log.
fn handled(nimbus: &Nimbus) -> Vec<String> {
    nimbus
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("function=worker"))
        .filter_map(|l| l.split("subject=").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect()
}

async fn visible_keys(nimbus: &Nimbus) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut after = String::new();
    loop {
        let page = get_json(nimbus.admin_url(&format!(
            "/v1/buckets/photos/objects?limit=1000&start_after={after}"
        )))
        .await;
        for o in page["objects"].as_array().unwrap() {
            keys.insert(o["key"].as_str().unwrap().to_owned());
        }
        match page["next_start_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return keys,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_upload_loses_its_event_across_sigkills() {
    run_object_crash(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_upload_loses_its_event_across_sigkills_on_postgres() {
    let store = nimbus_test_postgres::server().fresh_url();
    run_object_crash(&["--store", &store]).await;
}

/// The object crash test on the store `store_args` choose.
async fn run_object_crash(store_args: &[&str]) {
    let rounds = setting("NIMBUS_CRASH_ROUNDS", 3);
    let acks_per_round = setting("NIMBUS_CRASH_ACKS_PER_ROUND", 100);
    let app = TestApp::new("objcrash")
        .function("worker", programs::EVENTS, "timeout_ms = 2000\n\n[bucket.photos]")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"worker\"\nbatch_size = 10\nmax_concurrency = 2\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        );
    let body = "x".repeat(4096);
    let uploads = Writes::new();
    let mut delivered: Vec<String> = Vec::new();

    for _ in 0..rounds {
        let body = body.clone();
        let killed = uploads
            .kill_under_load(&app, store_args, acks_per_round, move |admin, n| {
                let body = body.clone();
                async move {
                    let key = format!("o-{n}");
                    let response = client()
                        .put(format!("{admin}/v1/buckets/photos/objects/{key}"))
                        .body(body)
                        .send()
                        .await
                        .ok()?;
                    (response.status() == 200).then_some(key)
                }
            })
            .await;
        delivered.extend(handled(&killed));
    }

    // A last, clean run drains the events.
    let nimbus = app.start_with(store_args).await;
    let acked: HashSet<String> = uploads.acknowledged();
    let stats_url = nimbus.admin_url("/v1/queues/_object.worker.photos");
    until(
        "for every acknowledged upload's event to be delivered",
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
            let drained = stats["visible"] == 0 && stats["in_flight"] == 0;
            (drained && acked.is_subset(&seen)).then_some(())
        },
    )
    .await;
    delivered.extend(handled(&nimbus));

    let visible = visible_keys(&nimbus).await;
    let invisible: Vec<_> = acked.iter().filter(|k| !visible.contains(*k)).collect();
    let seen: HashSet<&String> = delivered.iter().collect();
    let lost: Vec<_> = acked.iter().filter(|k| !seen.contains(k)).collect();
    // Every visible object had its event, acknowledged or not (an upload
    // can commit and be killed before its answer).
    let silent: Vec<_> = visible.iter().filter(|k| !seen.contains(k)).collect();
    let blobs = std::fs::read_dir(app.data_dir().join("buckets/photos"))
        .unwrap()
        .count();
    println!(
        "object crash test ({}): {rounds} SIGKILLs, {} acknowledged, {} visible, {} events delivered, lost {}, blobs {blobs}",
        store_name(store_args),
        acked.len(),
        visible.len(),
        delivered.len(),
        lost.len(),
    );
    assert!(
        invisible.is_empty(),
        "acknowledged but not visible: {invisible:?}"
    );
    assert!(lost.is_empty(), "acknowledged but no event: {lost:?}");
    assert!(silent.is_empty(), "visible without an event: {silent:?}");
    assert_eq!(
        blobs,
        visible.len(),
        "orphaned blobs were left after restart"
    );
}
