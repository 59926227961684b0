//! Deployments into a running server through the real CLI: versions go
//! live without a restart and without a failed request, queue messages
//! flow on across deploys with none lost, bad versions are refused with
//! the reason while the old one keeps serving, rollback returns the
//! previous answers, and a restart never rolls back a later deploy.

mod support;

use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{Nimbus, TestApp, cli, client, get_json, until, version};

/// An app whose route `/greet` answers `GREETING, world`.
fn greeter(greeting: &str) -> TestApp {
    TestApp::new("deploys")
        .function(
            "web",
            programs::HELLO,
            &format!("env = {{ GREETING = {greeting:?} }}"),
        )
        .route("/greet", "web", "")
}

async fn deploy(nimbus: &Nimbus, manifest: &Path) -> String {
    let output = cli(nimbus, &["deploy", manifest.to_str().unwrap()]).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "deploy failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn greeting(nimbus: &Nimbus) -> String {
    let response = client().get(nimbus.url("/greet")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_deploys_under_load_fail_no_request_and_every_answer_is_one_version() {
    let one = greeter("one");
    let nimbus = one.start().await;
    let v1 = one.write();
    let v2 = version(one.dir.path(), "v2.toml", &greeter("two"));
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = nimbus.url("/greet");
        let running = running.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut answers = Vec::new();
            while running.load(Ordering::SeqCst) {
                let response = http.get(&url).send().await;
                let answer = match response {
                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => format!("error {e}"),
                };
                answers.push(answer);
            }
            answers
        }));
    }
    for round in 0..20 {
        let (manifest, expected) = if round % 2 == 0 {
            (&v2, "two, world\n")
        } else {
            (&v1, "one, world\n")
        };
        let printed = deploy(&nimbus, manifest).await;
        assert!(printed.contains(" live in "), "{printed}");
        // Live when the deploy returns: the next request gets it.
        assert_eq!(greeting(&nimbus).await, expected, "round {round}");
    }
    running.store(false, Ordering::SeqCst);
    let mut answers = Vec::new();
    for c in clients {
        answers.extend(c.await.unwrap());
    }
    let ones = answers
        .iter()
        .filter(|a| *a == "200 OK one, world\n")
        .count();
    let twos = answers
        .iter()
        .filter(|a| *a == "200 OK two, world\n")
        .count();
    let other: Vec<&String> = answers
        .iter()
        .filter(|a| *a != "200 OK one, world\n" && *a != "200 OK two, world\n")
        .collect();
    assert!(other.is_empty(), "failed or mixed answers: {other:?}");
    assert!(ones > 0 && twos > 0, "{ones} ones, {twos} twos");
    // Two versions, each recorded once however often it was deployed.
    let listed = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_messages_sent_during_deploys_are_all_handled() {
    let worker = |tag: &str| {
        TestApp::new("flow")
            .function(
                "worker",
                programs::EVENTS,
                &format!("env = {{ TAG = {tag:?} }}\n\n[queue.jobs]"),
            )
            .route_kind(
                "queue",
                "queue = \"jobs\"\nfunction = \"worker\"\nbatch_size = 5",
            )
    };
    let a = worker("a");
    let nimbus = a.start().await;
    let va = a.write();
    let vb = version(a.dir.path(), "b.toml", &worker("b"));
    const SENT: usize = 300;
    let sender = {
        let url = nimbus.admin_url("/v1/queues/jobs/messages/batch");
        tokio::spawn(async move {
            for batch in 0..SENT / 10 {
                let messages: Vec<Value> = (0..10)
                    .map(|i| json!({ "body": format!("m{}", batch * 10 + i) }))
                    .collect();
                let response = client()
                    .post(&url)
                    .body(json!({ "messages": messages }).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        })
    };
    for round in 0..6 {
        deploy(&nimbus, if round % 2 == 0 { &vb } else { &va }).await;
    }
    sender.await.unwrap();
    let handled = nimbus
        .stderr
        .wait_until("every message handled", |lines| {
            let mut seen = std::collections::BTreeSet::new();
            for line in lines {
                if let Some(rest) = line.split("handled data=m").nth(1) {
                    seen.insert(rest.split(' ').next().unwrap().to_owned());
                }
            }
            (seen.len() == SENT).then_some(seen)
        })
        .await;
    assert_eq!(handled.len(), SENT);
    let stats = get_json(nimbus.admin_url("/v1/queues/jobs")).await;
    assert_eq!(stats["visible"], 0, "{stats}");
}

/// POSTs a deployment straight to the API (as `nimbus deploy` would after
/// its own checks), so the server's refusals are seen.
async fn post_deployment(nimbus: &Nimbus, manifest: &str, components: Value) -> (u16, Value) {
    let response = client()
        .post(nimbus.admin_url("/v1/deployments"))
        .body(json!({ "manifest": manifest, "components": components }).to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn upload(nimbus: &Nimbus, bytes: Vec<u8>) -> String {
    let digest = sha256_hex(&bytes);
    let response = client()
        .put(nimbus.admin_url(&format!("/v1/components/{digest}")))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    digest
}

fn sha256_hex(bytes: &[u8]) -> String {
    // The digest the server checks; computed here with the same rule.
    nimbus_store::deployment::component_digest(bytes)
}

#[tokio::test]
async fn bad_versions_are_refused_with_the_reason_and_the_old_one_keeps_serving() {
    let one = greeter("one").function(
        "events",
        programs::EVENTS,
        "\n[table.items]\npartition_key = \"id\"",
    );
    let nimbus = one.start().await;
    let hello = upload(&nimbus, std::fs::read(programs::HELLO).unwrap()).await;
    let events = upload(&nimbus, std::fs::read(programs::EVENTS).unwrap()).await;
    let base = |extra: &str| {
        format!(
            "[app]\nname = \"deploys\"\n[function.web]\ncomponent = \"web.wasm\"\nenv = {{ GREETING = \"two\" }}\n[function.events]\ncomponent = \"events.wasm\"\n[[trigger.http]]\nroute = \"/greet\"\nfunction = \"web\"\nauth = \"public\"\n{extra}"
        )
    };
    let components = json!({ "web": hello, "events": events });

    // A manifest that does not parse: its line and column.
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = 7\n"),
        components.clone(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains(":13:"), "{body}");

    // A component that is not WebAssembly.
    let garbage = upload(&nimbus, b"not a component".to_vec()).await;
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = \"id\"\n"),
        json!({ "web": garbage, "events": events }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("function `web`"),
        "{body}"
    );

    // A trigger that does not fit its function.
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = \"id\"\n[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"web\"\n"),
        components.clone(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("which is an HTTP function"),
        "{body}"
    );

    // A change the store cannot apply live: the key of a table that holds
    // items.
    let response = client()
        .post(nimbus.admin_url("/v1/tables/items/items"))
        .json(&json!({ "item": { "id": "a" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = \"other\"\n"),
        components.clone(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("table `items` holds items under partition key `id`; its keys cannot change"),
        "{body}"
    );

    // A component never uploaded.
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = \"id\"\n"),
        json!({ "web": "0".repeat(64), "events": events }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not uploaded"),
        "{body}"
    );

    // Nothing of the refused versions was recorded or served.
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    let metrics = client()
        .get(nimbus.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("nimbus_deploys_total{outcome=\"refused\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("\nnimbus_deployment 1\n"), "{metrics}");
    let listed = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        1,
        "{listed}"
    );

    // And a good one still goes live after them.
    let (status, body) = post_deployment(
        &nimbus,
        &base("[table.items]\npartition_key = \"id\"\n"),
        components,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(greeting(&nimbus).await, "two, world\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_the_previous_answers_and_deployments_lists_them() {
    let one = greeter("one");
    let nimbus = one.start().await;
    let v2 = version(one.dir.path(), "v2.toml", &greeter("two"));
    deploy(&nimbus, &v2).await;
    assert_eq!(greeting(&nimbus).await, "two, world\n");

    let output = cli(&nimbus, &["rollback"]).await;
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.starts_with("deployment 1 "), "{printed}");
    assert_eq!(greeting(&nimbus).await, "one, world\n");

    let output = cli(&nimbus, &["deployments"]).await;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID  CREATED"), "{table}");
    assert!(
        lines[1].starts_with("2 ") && !lines[1].ends_with('*'),
        "{table}"
    );
    assert!(
        lines[2].starts_with("1 ") && lines[2].ends_with('*'),
        "{table}"
    );

    // Rolling forward by id, and an unknown id refused.
    let output = cli(&nimbus, &["rollback", "2"]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(greeting(&nimbus).await, "two, world\n");
    let output = cli(&nimbus, &["rollback", "9"]).await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("deployment 9 does not exist"),
        "{output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_a_later_deploy_but_an_edited_manifest_goes_live() {
    let one = greeter("one");
    let mut nimbus = one.start().await;
    let v2 = version(one.dir.path(), "v2.toml", &greeter("two"));
    deploy(&nimbus, &v2).await;
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // The manifest is as this node last started with it: the deploy made
    // since stays live.
    let mut nimbus = one.start().await;
    assert_eq!(greeting(&nimbus).await, "two, world\n");
    nimbus
        .stdout
        .wait_for("the note on what is served", |l| {
            l.starts_with("serving deployment 2, the store's active one: this manifest is deployment 1, unchanged since this node last started")
                && l.ends_with("`nimbus rollback 1` serves it")
        })
        .await;
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // Edited since: what the operator wrote goes live.
    let three = greeter("three");
    let mut nimbus = Nimbus::start(&three.write(), &one.data_dir(), &[]).await;
    assert_eq!(greeting(&nimbus).await, "three, world\n");
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // Edited back to a version the store has served before: still an edit.
    let nimbus = one.start().await;
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    let listed = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(
        listed["deployments"].as_array().unwrap().len(),
        3,
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_pointed_at_another_store_serves_its_manifest_if_that_store_never_saw_it() {
    // This data directory last started with `one`, on its own store.
    let one = greeter("one");
    let mut nimbus = one.start().await;
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // Another store, whose active deployment is another version.
    let other = greeter("other");
    let mut nimbus = other.start().await;
    assert_eq!(greeting(&nimbus).await, "other, world\n");
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // The node, its manifest unchanged since it last started, now on the
    // other store: that store never served `one`, so it is no restart onto
    // a later deploy but a new version, and it goes live.
    let store = format!("sqlite:{}", other.data_dir().join("nimbus.db").display());
    let nimbus = Nimbus::start(&one.write(), &one.data_dir(), &["--store", &store]).await;
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    let listed = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(listed["deployments"][0]["id"], 2, "{listed}");
    assert_eq!(listed["deployments"][0]["active"], true, "{listed}");
}

/// The leases held in the cluster, by name.
async fn lease_names(nimbus: &Nimbus) -> Vec<String> {
    let view = get_json(nimbus.admin_url("/v1/cluster")).await;
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["leases"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_of_a_cluster_serves_a_deploy_made_through_one() {
    let store = nimbus_test_postgres::server().fresh_url();
    let with_schedule = greeter("one")
        .function("beat", programs::EVENTS, "")
        .route_kind(
            "schedule",
            "name = \"beat\"\nrate = \"rate(1 hour)\"\nfunction = \"beat\"",
        );
    let manifest = with_schedule.write();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let args = |node: &'static str| {
        ["--store", &store, "--node-id", node, "--lease-ms", "2000"].map(str::to_owned)
    };
    let a_args = args("node-a");
    let b_args = args("node-b");
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let a = Nimbus::start(&manifest, a_dir.path(), &a_args).await;
    let b = Nimbus::start(&manifest, b_dir.path(), &b_args).await;
    until("a node holds the schedule", || async {
        lease_names(&a)
            .await
            .contains(&"schedule:beat".to_owned())
            .then_some(())
    })
    .await;

    // Version two drops the schedule; deployed through node-a only.
    let v2 = version(with_schedule.dir.path(), "v2.toml", &greeter("two"));
    deploy(&a, &v2).await;
    assert_eq!(greeting(&a).await, "two, world\n");
    until("node-b serves version two", || async {
        (greeting(&b).await == "two, world\n").then_some(())
    })
    .await;
    // The dropped schedule's lease is given back, not renewed for ever.
    until("the schedule's lease is released", || async {
        (!lease_names(&b).await.contains(&"schedule:beat".to_owned())).then_some(())
    })
    .await;
    let listed = get_json(b.admin_url("/v1/deployments")).await;
    assert_eq!(listed["deployments"][0]["active"], true, "{listed}");
    assert_eq!(listed["deployments"][0]["id"], 2, "{listed}");
}

/// `nimbus dev`: an edit to a source file is built and deployed without a
/// restart; a failed build is shown and the running version serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_rebuilds_and_deploys_an_edited_source() {
    let app = TestApp::new("dev")
        .function(
            "web",
            "app.wasm",
            "build = \"cp \\\"$(cat source.txt)\\\" app.wasm\"",
        )
        .route("/greet", "web", "");
    let source = app.dir.path().join("source.txt");
    std::fs::write(&source, programs::HELLO).unwrap();
    let manifest = app.write();
    let mut command = tokio::process::Command::new(support::nimbus_bin());
    command
        .arg("dev")
        .arg(&manifest)
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(["--admin-token", support::ADMIN_TOKEN]);
    let nimbus = Nimbus::spawn(command).await;
    nimbus
        .stdout
        .wait_for("the watcher", |l| l.starts_with("watching "))
        .await;
    assert_eq!(greeting(&nimbus).await, "hello, world\n");

    // The source now names the echo component: built, deployed, served.
    std::fs::write(&source, programs::ECHO).unwrap();
    nimbus
        .stdout
        .wait_for("the rebuilt version", |l| {
            l.starts_with("deployment 2 live in ")
        })
        .await;
    let response = client()
        .post(nimbus.url("/greet"))
        .body("edited")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("edited"));

    // A build that fails changes nothing.
    std::fs::write(&source, "/no/such/component.wasm").unwrap();
    nimbus
        .stderr
        .wait_for("the failed build", |l| l.starts_with("build failed:"))
        .await;
    let response = client()
        .post(nimbus.url("/greet"))
        .body("still")
        .send()
        .await
        .unwrap();
    assert!(response.text().await.unwrap().contains("still"));
}

#[tokio::test]
async fn a_version_asking_more_memory_than_the_server_allows_is_refused() {
    let one = greeter("one");
    let nimbus = one.start_with(&["--max-function-memory-mb", "128"]).await;
    let hello = upload(&nimbus, std::fs::read(programs::HELLO).unwrap()).await;
    let manifest = "[app]\nname = \"deploys\"\n[function.web]\ncomponent = \"web.wasm\"\nmemory_mb = 256\n[[trigger.http]]\nroute = \"/greet\"\nfunction = \"web\"\nauth = \"public\"\n";
    let (status, body) = post_deployment(&nimbus, manifest, json!({ "web": hello })).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("function `web` asks for memory_mb = 256; this server allows at most 128"),
        "{body}"
    );
    assert_eq!(greeting(&nimbus).await, "one, world\n");
}

/// Python components are about 18 MB: past the 16 MiB the rest of `/v1`
/// takes, within what a component may be.
#[tokio::test]
async fn a_twenty_mib_component_uploads_and_a_wrong_digest_is_refused() {
    let nimbus = greeter("one").start().await;
    let bytes: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = upload(&nimbus, bytes.clone()).await;
    let missing = client()
        .post(nimbus.admin_url("/v1/components/missing"))
        .json(&json!({ "digests": [digest, "f".repeat(64)] }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(missing["missing"], json!(["f".repeat(64)]));
    let response = client()
        .put(nimbus.admin_url(&format!("/v1/components/{}", "0".repeat(64))))
        .body(b"other bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_active_version_writes_no_deployment_and_no_started_with() {
    let one = greeter("one");
    let mut nimbus = one.start().await;
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    let before = get_json(nimbus.admin_url("/v1/deployments")).await;
    let started_with = one.data_dir().join("started-with");
    let file_before = std::fs::metadata(&started_with).expect("started-with written");
    let digest = std::fs::read_to_string(&started_with).unwrap();
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // The same manifest, the same components: the version is the active
    // one, so it is served as it is, neither activated again (its
    // `activated` time stays) nor recorded again, and `started-with`, which
    // already names it, is not rewritten (a rewrite renames a new file in).
    let mut nimbus = one.start().await;
    assert_eq!(greeting(&nimbus).await, "one, world\n");
    nimbus
        .stdout
        .wait_for("the deployment served", |l| l == "deployment 1 active")
        .await;
    let after = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(after, before, "the deployments are as they were");
    assert_eq!(before["deployments"][0]["active"], true, "{before}");
    let file_after = std::fs::metadata(&started_with).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(
        file_after.ino(),
        file_before.ino(),
        "started-with rewritten"
    );
    assert_eq!(std::fs::read_to_string(&started_with).unwrap(), digest);
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));

    // An edited manifest is still recorded, activated and remembered.
    let two = greeter("two");
    let nimbus = Nimbus::start(&two.write(), &one.data_dir(), &[]).await;
    assert_eq!(greeting(&nimbus).await, "two, world\n");
    let listed = get_json(nimbus.admin_url("/v1/deployments")).await;
    assert_eq!(listed["deployments"][0]["id"], 2, "{listed}");
    assert_eq!(listed["deployments"][0]["active"], true, "{listed}");
    assert_ne!(std::fs::read_to_string(&started_with).unwrap(), digest);
}
