//! `nimbus up --objects s3://...`: object bytes in S3 (a private SeaweedFS
//! for this test process) with the AWS settings from the environment. Two
//! nodes on one PostgreSQL schema and one S3 prefix serve one app: an object
//! uploaded through one node's `/v1` reads whole and by range through the
//! other's, its trigger fires, nothing lands in either data directory, and
//! the secret shows nowhere. Settings that cannot work stop `up` with one
//! line that names the location and never the secret.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{ADMIN_TOKEN, CONFIG_HOME, Nimbus, TestApp, client, nimbus_bin};

fn app() -> TestApp {
    TestApp::new("s3objects")
        .function("all", programs::EVENTS, "\n[bucket.photos]\n[queue.failed]")
        .route_kind("object", "bucket = \"photos\"\nfunction = \"all\"")
}

/// `nimbus up` for `app` with its data in `data_dir`, state in `store` and
/// object bytes at `objects`, reaching the test S3 server through the
/// environment as AWS tools would (`secret` as the secret key).
fn up_command(
    app: &TestApp,
    data_dir: &std::path::Path,
    store: &str,
    objects: &str,
    secret: &str,
) -> tokio::process::Command {
    let server = nimbus_test_s3::server();
    let mut command = tokio::process::Command::new(nimbus_bin());
    command
        .arg("up")
        .arg(app.manifest_path())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-token", ADMIN_TOKEN, "--store", store])
        .env("NIMBUS_OBJECTS", objects)
        .env("XDG_CONFIG_HOME", CONFIG_HOME);
    for (key, value) in server.env() {
        command.env(key, value);
    }
    command.env("AWS_SECRET_ACCESS_KEY", secret);
    command
}

fn object_url(nimbus: &Nimbus, key: &str) -> String {
    nimbus.admin_url(&format!("/v1/buckets/photos/objects/{key}"))
}

fn handled_keys(nimbus: &Nimbus) -> Vec<String> {
    nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("handled data={") && l.contains("function=all"))
        .filter_map(|l| {
            let data = l.split("handled data=").nth(1)?;
            let json: Value = serde_json::from_str(&data[..data.find(" attempt=")?]).ok()?;
            Some(json["key"].as_str()?.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn two_nodes_share_object_bytes_on_s3_and_the_upload_fires_its_trigger() {
    let app = app();
    app.write();
    let store = nimbus_test_postgres::server().fresh_url();
    let objects = nimbus_test_s3::server().fresh_location();
    let secret = nimbus_test_s3::SECRET_ACCESS_KEY;
    let other_data = tempfile::tempdir().unwrap();
    let first = Nimbus::spawn(up_command(&app, &app.data_dir(), &store, &objects, secret)).await;
    let second = Nimbus::spawn(up_command(
        &app,
        other_data.path(),
        &store,
        &objects,
        secret,
    ))
    .await;
    first
        .stderr
        .wait_for("the storage line", |l| l.contains("object bytes in s3://"))
        .await;

    let body = "a picture of a cat, in bytes";
    let put = client()
        .put(object_url(&first, "img/cat.txt"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let stored: Value = put.json().await.unwrap();

    // The other node reads the bytes, whole and by range.
    let got = client()
        .get(object_url(&second, "img/cat.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "text/plain");
    assert_eq!(got.text().await.unwrap(), body);
    let part = client()
        .get(object_url(&second, "img/cat.txt"))
        .header("range", "bytes=2-8")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.text().await.unwrap(), "picture");

    // The trigger fires, on whichever node took the event.
    support::until("the object trigger to handle the upload", || async {
        let handled: Vec<String> = handled_keys(&first)
            .into_iter()
            .chain(handled_keys(&second))
            .collect();
        (handled == ["img/cat.txt"]).then_some(())
    })
    .await;

    // Replaced through the second node, removed through the first.
    let replaced = client()
        .put(object_url(&second, "img/cat.txt"))
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_ne!(replaced["sequencer"], stored["sequencer"]);
    let again = client()
        .get(object_url(&first, "img/cat.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.text().await.unwrap(), "v2");
    let removed = client()
        .delete(object_url(&first, "img/cat.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = client()
        .get(object_url(&second, "img/cat.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    // The bytes were never in a data directory, and the secret was never
    // printed or served.
    for dir in [app.data_dir(), other_data.path().to_owned()] {
        assert!(!dir.join("buckets").exists(), "{}", dir.display());
    }
    let buckets = support::get_text(first.admin_url("/v1/buckets")).await;
    for text in [
        first.stderr.text(),
        first.stdout.text(),
        second.stderr.text(),
        second.stdout.text(),
        buckets,
    ] {
        assert!(!text.contains(secret), "the secret leaked: {text}");
    }
}

#[tokio::test]
async fn settings_that_cannot_work_stop_up_with_one_line_and_no_secret() {
    let app = app();
    app.write();
    let secret = "wrong-secret-never-to-be-shown";
    let objects = nimbus_test_s3::server().fresh_location();
    let run = |objects: &str, secret: &str| {
        let data = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", data.path().join("nimbus.db").display());
        let mut command = up_command(&app, data.path(), &store, objects, secret);
        command.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
        let output = command.into_std().output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{stderr}");
        assert!(
            !stderr.contains(secret) && !String::from_utf8_lossy(&output.stdout).contains(secret),
            "the secret leaked: {stderr}"
        );
        stderr.lines().last().unwrap_or_default().to_owned()
    };

    let refused = run(&objects, secret);
    assert!(
        refused.contains("failed to open the buckets")
            && refused.contains(&format!(
                "cannot list {objects} at {}",
                nimbus_test_s3::server().endpoint()
            )),
        "{refused}"
    );
    let missing = run("s3://no-such-bucket", nimbus_test_s3::SECRET_ACCESS_KEY);
    assert!(
        missing.contains("cannot list s3://no-such-bucket"),
        "{missing}"
    );
    let scheme = run("ftp://host/x", secret);
    assert!(
        scheme.contains("--objects: objects live at s3://BUCKET[/PREFIX] or file:PATH"),
        "{scheme}"
    );
}
