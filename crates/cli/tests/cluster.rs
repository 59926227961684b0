//! Nodes sharing one PostgreSQL: a stream trigger's lanes, the schedules
//! and the sweepers are leased, so the nodes split them (each record handled
//! once, by the node holding its lane; each tick fired once) and the work of
//! a node that is killed resumes on the survivor once its leases lapse, or
//! at once when it stops cleanly; API keys and their quota use are shared.

mod support;

use nimbus_test_programs as programs;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::{Nimbus, TestApp, client, until};

const TABLE: &str = "[table.orders]\npartition_key = \"customer\"\nsort_key = \"order\"\nstream = \"new_and_old_images\"\nmax_item_bytes = 1024\n";
const LANES: usize = 4;
const LEASE_MS: u64 = 2_000;
const KEYS: usize = 16;

/// `(seq, key)` of every change record a node's function printed.
fn handled(lines: &[String]) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("stream seq=")?..];
            let field = |name: &str| -> Option<String> {
                let start = rest.find(&format!("{name}="))? + name.len() + 1;
                Some(rest[start..].split(' ').next()?.to_owned())
            };
            Some((field("seq")?.parse().ok()?, field("key")?))
        })
        .collect()
}

async fn start(
    manifest: &std::path::Path,
    dir: &std::path::Path,
    store: &str,
    node: &str,
) -> Nimbus {
    let lease = LEASE_MS.to_string();
    Nimbus::start(
        manifest,
        dir,
        &["--store", store, "--node-id", node, "--lease-ms", &lease],
    )
    .await
}

async fn write_round(nimbus: &Nimbus, round: usize) {
    for key in 0..KEYS {
        let item = json!({ "customer": format!("c{key:02}"), "order": "1", "round": round });
        let response = client()
            .post(nimbus.admin_url("/v1/tables/orders/items"))
            .json(&json!({ "item": item }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Lines of `nimbus` saying it took a lane's lease.
fn taken(nimbus: &Nimbus) -> usize {
    nimbus
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("took the unit's lease") && l.contains("stream:orders:consumer:"))
        .count()
}

#[tokio::test]
async fn nodes_split_stream_lanes_and_a_killed_nodes_lanes_resume_on_the_survivor() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("cluster")
        .function("consumer", programs::TABLES, &format!("\n{TABLE}"))
        .route_kind(
            "stream",
            &format!("table = \"orders\"\nfunction = \"consumer\"\nmax_concurrency = {LANES}\nstarting_position = \"oldest\""),
        );
    let manifest = app.write();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&manifest, a_dir.path(), &store, "node-a").await;
    a.stderr
        .wait_for_count("node-a taking every lane", LANES, |l| {
            l.contains("took the unit's lease") && l.contains("stream:orders:consumer:")
        })
        .await;
    let mut b = start(&manifest, b_dir.path(), &store, "node-b").await;
    // node-a sheds half the lanes, they lapse, and node-b takes them.
    b.stderr
        .wait_for_count("node-b taking its share of the lanes", LANES / 2, |l| {
            l.contains("took the unit's lease") && l.contains("stream:orders:consumer:")
        })
        .await;
    assert!(
        a.stderr
            .snapshot()
            .iter()
            .any(|l| l.contains("handing the unit over") && l.contains("node=node-a")),
        "node-a hands lanes over"
    );
    // The sweepers (messages, streams, history) are split too: node-b
    // takes one of the three.
    b.stderr
        .wait_for("node-b taking a sweeper", |l| {
            l.contains("took the unit's lease") && l.contains("lease=sweep:")
        })
        .await;

    for round in 0..2 {
        write_round(if round == 0 { &a } else { &b }, round).await;
    }
    // Lines of two processes: looked at in turn until both together hold
    // every record.
    let both = until("for every record on one node or the other", || async {
        let mut seen = handled(&a.stderr.snapshot());
        seen.extend(handled(&b.stderr.snapshot()));
        (seen.len() >= 2 * KEYS).then_some(seen)
    })
    .await;
    let seqs: BTreeSet<u64> = both.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs.len(), 2 * KEYS, "each record once: {both:?}");
    assert_eq!(both.len(), 2 * KEYS, "no record handled twice: {both:?}");
    let (on_a, on_b) = (handled(&a.stderr.snapshot()), handled(&b.stderr.snapshot()));
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "both nodes work: a {on_a:?}, b {on_b:?}"
    );
    let keys_a: BTreeSet<&String> = on_a.iter().map(|(_, k)| k).collect();
    let keys_b: BTreeSet<&String> = on_b.iter().map(|(_, k)| k).collect();
    assert!(keys_a.is_disjoint(&keys_b), "a key's lane runs on one node");

    // node-b dies without a word; its lanes lapse and node-a takes them.
    let taken_before = taken(&a);
    b.child.start_kill().unwrap();
    b.child.wait().await.unwrap();
    let killed = Instant::now();
    write_round(&a, 2).await;
    let after: Vec<(u64, String)> = a
        .stderr
        .wait_until(
            "for node-a to handle the records of node-b's lanes too",
            |lines| {
                let late: Vec<_> = handled(lines)
                    .into_iter()
                    .filter(|(seq, _)| !seqs.contains(seq))
                    .collect();
                (late.len() >= KEYS).then_some(late)
            },
        )
        .await;
    let resumed = killed.elapsed();
    assert_eq!(
        taken(&a),
        taken_before + LANES / 2,
        "node-a takes node-b's lanes"
    );
    let keys: BTreeSet<&String> = after.iter().map(|(_, k)| k).collect();
    assert_eq!(
        keys.len(),
        KEYS,
        "every key's new record is handled: {after:?}"
    );
    // The leases lapse within one lease period of the kill and node-a takes
    // them as they do; the rest is the round of writes and the first
    // batches, with room for a loaded machine.
    assert!(
        resumed < Duration::from_millis(LEASE_MS * 5 / 2),
        "node-b's lanes resumed after {resumed:?}"
    );
    // Per key, records stay in write order across the handover.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (seq, key) in &handled(&a.stderr.snapshot()) {
        let previous = last.insert(key, *seq);
        assert!(previous.is_none_or(|p| p < *seq), "{key} out of order");
    }
}

/// A POST to `/keyed` on `nimbus` presenting `key`: its status.
async fn keyed(nimbus: &Nimbus, key: &str) -> u16 {
    reqwest::Client::new()
        .post(nimbus.url("/keyed"))
        .header("x-api-key", key)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn api_keys_and_their_quota_are_one_truth_across_nodes() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("cluster-keys")
        .function("echo", programs::ECHO, "")
        .route("/keyed", "echo", "auth = \"api_key\"");
    let manifest = app.write();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&manifest, a_dir.path(), &store, "node-a").await;
    let b = start(&manifest, b_dir.path(), &store, "node-b").await;

    // A key made on node-a works on node-b once node-b has read it back.
    let created: serde_json::Value = client()
        .post(a.admin_url("/v1/keys"))
        .json(&json!({ "name": "shared", "quota": 5, "quota_period": "day" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(keyed(&a, &key).await, 200);
    until("for node-b to accept the key made on node-a", || async {
        (keyed(&b, &key).await == 200).then_some(())
    })
    .await;

    // Use on both nodes adds up: 2 so far; node-a uses 2 more, and once
    // node-b sees all 4 it allows one more and refuses the next.
    for _ in 0..2 {
        assert_eq!(keyed(&a, &key).await, 200);
    }
    until("for node-b to see every use of the key", || async {
        let keys: serde_json::Value = client()
            .get(b.admin_url("/v1/keys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (keys["keys"][0]["quota_used"] == 4).then_some(())
    })
    .await;
    assert_eq!(keyed(&b, &key).await, 200);
    assert_eq!(
        keyed(&b, &key).await,
        429,
        "the fifth use on either node was the last"
    );

    // Revoked on node-b: node-a refuses it within seconds.
    let revoked = Instant::now();
    let response = client()
        .delete(b.admin_url(&format!("/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    until("for node-a to refuse the key revoked on node-b", || async {
        (keyed(&a, &key).await == 401).then_some(())
    })
    .await;
    assert!(
        revoked.elapsed() < Duration::from_secs(5),
        "revocation reached node-a after {:?}",
        revoked.elapsed()
    );
}

/// The `scheduled_time`s (ms since the epoch) of the tick records on queue
/// `done`, in order, repeats kept.
async fn recorded_ticks(nimbus: &Nimbus) -> Vec<i64> {
    let page: serde_json::Value = client()
        .get(nimbus.admin_url("/v1/queues/done/messages?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ticks: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let record: serde_json::Value =
                serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
            let tick: serde_json::Value =
                serde_json::from_str(record["event"]["data"].as_str().unwrap()).unwrap();
            let time = tick["scheduled_time"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(time)
                .unwrap()
                .timestamp_millis()
        })
        .collect();
    ticks.sort();
    ticks
}

#[tokio::test]
async fn a_schedule_fires_each_tick_once_across_nodes_and_survives_its_node() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("cluster-schedule")
        .function("worker", programs::EVENTS, "\n[queue.done]")
        .route_kind(
            "schedule",
            "name = \"beat\"\ncron = \"* * * * * *\"\ncatch_up = \"all\"\nfunction = \"worker\"\non_success = \"queue:done\"",
        );
    let manifest = app.write();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(&manifest, a_dir.path(), &store, "node-a").await;
    a.stderr
        .wait_for("node-a taking the schedule", |l| {
            l.contains("took the unit's lease") && l.contains("schedule:beat")
        })
        .await;
    let mut b = start(&manifest, b_dir.path(), &store, "node-b").await;
    until("for three ticks", || async {
        (recorded_ticks(&b).await.len() >= 3).then_some(())
    })
    .await;

    // node-a, which fires the ticks, dies; node-b takes the schedule once
    // the lease lapses and fires the ticks of the gap (catch_up = "all").
    let mut a = a;
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    b.stderr
        .wait_for("node-b taking the schedule", |l| {
            l.contains("took the unit's lease") && l.contains("schedule:beat")
        })
        .await;
    let ticks = until("for ticks well after the handover", || async {
        let ticks = recorded_ticks(&b).await;
        (ticks
            .last()
            .is_some_and(|last| *last >= killed_ms + 2 * LEASE_MS as i64))
        .then_some(ticks)
    })
    .await;
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks, "a tick fired twice");
    // Every second from the first tick on is there, but for the ticks
    // node-a may have been delivering when it died (their messages come
    // back only after their lease on the tick queue runs out).
    let (first, last) = (ticks[0], *ticks.last().unwrap());
    let missing: Vec<i64> = (0..)
        .map(|i| first + i * 1000)
        .take_while(|t| *t <= last)
        .filter(|t| !ticks.contains(t))
        .collect();
    assert!(
        missing
            .iter()
            .all(|t| (killed_ms - 3_000..=killed_ms + 1_000).contains(t)),
        "ticks missing away from the moment node-a died ({killed_ms}): {missing:?} of {ticks:?}"
    );
    b.terminate();
    assert_eq!(b.exit_code().await, Some(0));
}

#[tokio::test]
async fn a_node_that_stops_hands_its_lanes_over_without_waiting_for_its_leases() {
    // Leases far longer than the handover may take: a handover that waited
    // for them to lapse would fail the time bound below.
    const LONG_LEASE_MS: u64 = 8_000;
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("cluster-handover")
        .function("consumer", programs::TABLES, &format!("\n{TABLE}"))
        .route_kind(
            "stream",
            &format!("table = \"orders\"\nfunction = \"consumer\"\nmax_concurrency = {LANES}"),
        );
    let manifest = app.write();
    let lease = LONG_LEASE_MS.to_string();
    let args = |node: &'static str| -> Vec<String> {
        ["--store", &store, "--node-id", node, "--lease-ms", &lease]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_args = args("node-a");
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let a = Nimbus::start(&manifest, a_dir.path(), &a_args).await;
    a.stderr
        .wait_for_count("node-a taking every lane", LANES, |l| {
            l.contains("took the unit's lease") && l.contains("stream:orders:consumer:")
        })
        .await;
    let b_args = args("node-b");
    let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let mut b = Nimbus::start(&manifest, b_dir.path(), &b_args).await;
    let joined = Instant::now();
    b.stderr
        .wait_for_count("node-b taking its share", LANES / 2, |l| {
            l.contains("took the unit's lease") && l.contains("stream:orders:consumer:")
        })
        .await;
    assert!(
        joined.elapsed() < Duration::from_millis(LONG_LEASE_MS),
        "node-a gave lanes back once its workers stopped, not when the leases lapsed ({:?})",
        joined.elapsed()
    );

    // node-b stops cleanly: it gives its lanes and its node lease back, and
    // node-a takes them on its next round.
    let taken_before = taken(&a);
    b.terminate();
    assert_eq!(b.exit_code().await, Some(0));
    let stopped = Instant::now();
    until("for node-a to take node-b's lanes", || async {
        (taken(&a) >= taken_before + LANES / 2).then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_millis(LONG_LEASE_MS),
        "the lanes moved after {:?}",
        stopped.elapsed()
    );
    write_round(&a, 0).await;
    let seen = a
        .stderr
        .wait_until("for node-a to handle every key", |lines| {
            let keys: BTreeSet<String> = handled(lines).into_iter().map(|(_, k)| k).collect();
            (keys.len() >= KEYS).then_some(keys)
        })
        .await;
    assert_eq!(seen.len(), KEYS);
}

/// `GET /v1/cluster` on `nimbus`.
async fn cluster_view(nimbus: &Nimbus) -> serde_json::Value {
    support::get_json(nimbus.admin_url("/v1/cluster")).await
}

/// The entry of node `id` in a cluster view.
fn node_entry<'a>(view: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    view["nodes"].as_array()?.iter().find(|n| n["id"] == id)
}

#[tokio::test]
async fn every_node_shows_the_cluster_and_records_name_the_node_that_ran_them() {
    let store = nimbus_test_postgres::server().fresh_url();
    let app = TestApp::new("cluster-view").function("events", programs::EVENTS, "");
    let manifest = app.write();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start(&manifest, a_dir.path(), &store, "node-a").await;
    let b = start(&manifest, b_dir.path(), &store, "node-b").await;

    // A slow invocation on node-a is work in flight, seen from node-b.
    let slow = tokio::spawn({
        let url = a.admin_url("/v1/functions/events/invoke");
        async move {
            let response = client().post(url).body("sleep:3000").send().await.unwrap();
            assert_eq!(response.status(), 200);
            let result: serde_json::Value = response.json().await.unwrap();
            result["invocation_id"].as_str().unwrap().to_owned()
        }
    });
    let view = until(
        "for node-b to see node-a's invocation in flight",
        || async {
            let view = cluster_view(&b).await;
            let busy = node_entry(&view, "node-a")?["in_flight"].as_u64()? >= 1;
            let both_live = ["node-a", "node-b"]
                .iter()
                .all(|id| node_entry(&view, id).is_some_and(|n| n["live"] == true));
            (busy && both_live).then_some(view)
        },
    )
    .await;
    assert_eq!(view["node"], "node-b", "the answering node names itself");
    for id in ["node-a", "node-b"] {
        let node = node_entry(&view, id).unwrap();
        assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));
        assert!(node["last_heartbeat"].is_string() && node["started_at"].is_string());
    }
    // Each sweeper is one node's, and the view tells whose.
    let view = until("for the sweepers to be held", || async {
        let view = cluster_view(&a).await;
        let held: Vec<String> = view["nodes"]
            .as_array()?
            .iter()
            .flat_map(|n| n["leases"].as_array().cloned().unwrap_or_default())
            .filter_map(|l| l["name"].as_str().map(str::to_owned))
            .collect();
        (held.iter().filter(|l| l.starts_with("sweep:")).count() >= 3).then_some(held)
    })
    .await;
    let sweepers: BTreeSet<&String> = view.iter().filter(|l| l.starts_with("sweep:")).collect();
    assert_eq!(sweepers.len(), 3, "each sweeper held once: {view:?}");

    // The record of the slow invocation names node-a, whichever node reads it.
    let id = slow.await.unwrap();
    let record = until("for the record of the slow invocation", || async {
        let record = support::get_json(b.admin_url(&format!("/v1/invocations/{id}"))).await;
        record["node"].is_string().then_some(record)
    })
    .await;
    assert_eq!(record["node"], "node-a");

    // The CLI shows the same, as a table.
    let output = support::nimbus(&["cluster", "status", "--admin", &b.admin], b_dir.path());
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NODE") && lines[0].contains("LAST HEARTBEAT"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("node-a ") && l.contains(" live ")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("node-b (this)") && l.contains(" live ")),
        "{text}"
    );

    // A killed node stays listed, not live and holding nothing, once its
    // leases lapse (its heartbeat lease first: it is renewed first).
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    let gone = until("for node-a's leases to lapse in node-b's view", || async {
        let view = cluster_view(&b).await;
        let a = node_entry(&view, "node-a")?.clone();
        (a["live"] == false && a["leases"] == json!([])).then_some(a)
    })
    .await;
    assert!(gone["last_heartbeat"].is_string(), "{gone}");
}
