//! The S3 endpoint through the real server and real clients: boto3 (objects,
//! listings, copies, checksums, multipart, presigned URLs, malformed XML,
//! an object trigger firing on S3 uploads, every operation refused without
//! a grant, parts surviving a restart), the AWS CLI from PyPI and Debian's
//! (`aws s3 cp` of 20 MiB in parts up, down and within the store, `aws s3
//! sync`), and HTTPS with a self-signed certificate (both CLIs), where
//! SDKs send `aws-chunked` bodies with trailing checksums; uploads in
//! progress listed, date conditions, checksums kept (CRC32C through
//! `awscrt`), and virtual-hosted-style buckets under `--s3-domain`. The
//! client scripts are in `tests/aws/s3_*.py`.

mod support;

use nimbus_test_programs as programs;
use std::path::Path;
use std::process::Command;
use support::aws::aws_command;
use support::{Nimbus, TestApp, cli};

/// The buckets every test here serves: `photos` (32 MiB objects, with an
/// object trigger), `small` (1 KiB), `other` and `third`.
fn app(name: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "watcher",
            programs::EVENTS,
            "\n[bucket.photos]\nmax_object_bytes = 33554432\n\n[bucket.small]\nmax_object_bytes = 1024\n\n[bucket.other]\n\n[bucket.third]",
        )
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"watcher\"\nevents = [\"created\"]",
        )
        .function("traced", programs::EVENTS, "")
        .route_kind(
            "object",
            "bucket = \"photos\"\nfunction = \"traced\"\nprefix = \"trace/\"\nevents = [\"created\"]",
        )
}

/// Starts `app` with the S3 endpoint (over HTTPS with `tls`); returns the
/// server and the endpoint's URL.
async fn start(app: &TestApp, tls: Option<&(String, String)>) -> (Nimbus, String) {
    let mut args = Vec::new();
    if let Some((cert, key)) = tls {
        args.extend([
            "--aws-tls-cert",
            cert.as_str(),
            "--aws-tls-key",
            key.as_str(),
        ]);
    }
    start_with(app, &args).await
}

/// Starts `app` with the S3 endpoint and `extra` arguments.
async fn start_with(app: &TestApp, extra: &[&str]) -> (Nimbus, String) {
    let manifest = app.write();
    let mut args = vec!["--s3-listen", "127.0.0.1:0"];
    args.extend(extra);
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &args).await;
    let line = nimbus
        .stdout
        .wait_for("the S3 listener", |l| l.starts_with("s3 listening on "))
        .await;
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (nimbus, url)
}

/// An access key with `grants`: its id and secret.
async fn access_key(nimbus: &Nimbus, name: &str, grants: &[&str]) -> (String, String) {
    let mut args = vec!["access-key", "create", name];
    for grant in grants {
        args.extend(["--allow", grant]);
    }
    let output = cli(nimbus, &args).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// Runs a command to its end off the runtime's threads; fails the test
/// with its output unless it succeeds (a missing client fails with the
/// command that installs it).
async fn run(mut command: Command, what: &str, install: &str) -> String {
    let shown = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what} could not start ({e}); install it: {install}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {shown}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn python(
    script: &str,
    endpoint: &str,
    key: &(String, String),
    env: &[(&str, &str)],
) -> String {
    python_args(&[script], endpoint, key, env).await
}

/// Runs a client script with arguments; returns what it printed.
async fn python_args(
    args: &[&str],
    endpoint: &str,
    key: &(String, String),
    env: &[(&str, &str)],
) -> String {
    let mut command = aws_command("python3", &key.0, &key.1);
    command.args(args).env("S3_ENDPOINT", endpoint);
    for (name, value) in env {
        command.env(name, value);
    }
    run(
        command,
        args[0],
        "python3 -m pip install boto3 (see .ci/run for the pinned version)",
    )
    .await
}

/// The object keys the `watcher` function was given created events for,
/// from the server's log lines.
fn created_keys(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("handled data={") && l.contains("function=watcher"))
        .filter_map(|l| {
            let data = l.split("handled data=").nth(1)?;
            let json: serde_json::Value =
                serde_json::from_str(&data[..data.find(" attempt=")?]).ok()?;
            Some(json["key"].as_str()?.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn boto3_works_with_objects_listings_multipart_and_presigned_urls_within_its_grants() {
    let app = app("s3boto");
    let (nimbus, endpoint) = start(&app, None).await;
    let owner = access_key(
        &nimbus,
        "owner",
        &[
            "bucket:photos:read",
            "bucket:photos:write",
            "bucket:small:write",
        ],
    )
    .await;
    python("s3_objects.py", &endpoint, &owner, &[]).await;

    // Objects written through S3 fire the trigger as /v1 uploads do: a
    // put, a copy, a presigned put and a completed multipart upload.
    nimbus
        .stderr
        .wait_until("the S3 uploads' events", |lines| {
            let keys = created_keys(lines);
            ["docs/a.txt", "docs/copy.txt", "docs/presigned", "multi/obj"]
                .iter()
                .all(|k| keys.iter().any(|got| got == k))
                .then_some(())
        })
        .await;
    // The uploader's trace continues in the triggered invocation.
    let records = support::until("the traced upload's invocation", || async {
        let page = support::get_json(nimbus.admin_url("/v1/invocations?function=traced")).await;
        let found = page["invocations"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(records[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // A refused upload fires nothing.
    assert!(
        !created_keys(&nimbus.stderr.snapshot())
            .iter()
            .any(|k| k == "sum/bad")
    );

    let limited = access_key(
        &nimbus,
        "limited",
        &["bucket:other:read", "bucket:photos/inbox/:write"],
    )
    .await;
    python(
        "s3_denied.py",
        &endpoint,
        &limited,
        &[
            ("OWNER_ACCESS_KEY_ID", &owner.0),
            ("OWNER_SECRET_ACCESS_KEY", &owner.1),
        ],
    )
    .await;
    // Still serving /v1, with what S3 stored.
    let listed =
        support::get_json(nimbus.admin_url("/v1/buckets/photos/objects?prefix=docs/")).await;
    let keys: Vec<&str> = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"docs/a.txt"), "{listed}");
}

#[tokio::test]
async fn boto3_lists_uploads_in_progress_weighs_dates_and_gets_the_checksums_kept() {
    let app = app("s3more");
    let (nimbus, endpoint) = start(&app, None).await;
    let key = access_key(
        &nimbus,
        "more",
        &["bucket:photos:read", "bucket:photos:write"],
    )
    .await;
    python("s3_more.py", &endpoint, &key, &[]).await;
    // The checksums kept are no user metadata for /v1.
    let response = support::client()
        .get(nimbus.admin_url("/v1/buckets/photos/objects/kept/CRC32"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("x-nimbus-meta-")),
        "{:?}",
        response.headers()
    );
    let listed =
        support::get_json(nimbus.admin_url("/v1/buckets/photos/objects?prefix=kept/")).await;
    for object in listed["objects"].as_array().unwrap() {
        assert_eq!(object["metadata"], serde_json::json!({}), "{listed}");
    }
}

#[tokio::test]
async fn under_s3_domain_a_host_names_its_bucket_and_path_style_keeps_working() {
    let app = app("s3vhost");
    let (nimbus, endpoint) = start_with(&app, &["--s3-domain", "s3.example.test"]).await;
    let key = access_key(
        &nimbus,
        "vhost",
        &[
            "bucket:photos:read",
            "bucket:photos:write",
            "bucket:other:read",
            "bucket:other:write",
        ],
    )
    .await;
    python("s3_vhost.py", &endpoint, &key, &[]).await;
}

#[tokio::test]
async fn an_s3_domain_that_is_no_domain_name_stops_the_start() {
    let app = app("s3baddomain");
    let manifest = app.write();
    let data_dir = app.data_dir();
    let child = tokio::process::Command::new(support::nimbus_bin())
        .arg("up")
        .arg(&manifest)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--admin-token", support::ADMIN_TOKEN])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args([
            "--s3-listen",
            "127.0.0.1:0",
            "--s3-domain",
            "s3.example.test:9000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(support::PATIENCE, child.wait_with_output())
        .await
        .expect("nimbus up kept running with a bad --s3-domain")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--s3-domain") && stderr.contains("s3.example.test:9000"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_multipart_upload_survives_a_restart_of_the_server() {
    let app = app("s3restart");
    let (nimbus, endpoint) = start(&app, None).await;
    let key = access_key(
        &nimbus,
        "mp",
        &["bucket:photos:read", "bucket:photos:write"],
    )
    .await;
    let upload = python_args(&["s3_restart.py", "begin"], &endpoint, &key, &[]).await;
    let upload = upload.trim().to_owned();
    nimbus.terminate();
    let mut nimbus = nimbus;
    assert_eq!(nimbus.exit_code().await, Some(0));
    // The orphan sweep at start runs before the endpoint serves.
    let (nimbus, endpoint) = start(&app, None).await;
    python_args(&["s3_restart.py", "finish", &upload], &endpoint, &key, &[]).await;
    nimbus
        .stderr
        .wait_until("the completed upload's event", |lines| {
            created_keys(lines)
                .iter()
                .any(|k| k == "restart/obj")
                .then_some(())
        })
        .await;
}

/// `aws s3 cp` of 20 MiB (in 8 MiB parts) up and down, and `aws s3 sync`.
async fn cp_and_sync(
    program: &str,
    endpoint: &str,
    key: &(String, String),
    dir: &Path,
    tls: &[&str],
) {
    let name = Path::new(program).file_name().unwrap().to_str().unwrap();
    let install = if program.starts_with("/usr/bin") {
        "apt-get install -y awscli"
    } else {
        "python3 -m pip install awscli (see .ci/run for the pinned version)"
    };
    let work = dir.join(format!("{name}-{}", program.len()));
    std::fs::create_dir_all(work.join("tree/sub")).unwrap();
    let big: Vec<u8> = (0..20u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    std::fs::write(work.join("tree/a.txt"), "a").unwrap();
    std::fs::write(work.join("tree/sub/b.txt"), "b").unwrap();
    let prefix = format!("s3://photos/{name}{}", program.len());
    let aws = |args: &[&str]| {
        let mut command = aws_command(program, &key.0, &key.1);
        command
            .args(["--endpoint-url", endpoint])
            .args(tls)
            .args(args);
        if args[1] != "ls" {
            command.arg("--only-show-errors");
        }
        command
    };
    let up = work.join("big.bin");
    let down = work.join("down.bin");
    run(
        aws(&[
            "s3",
            "cp",
            up.to_str().unwrap(),
            &format!("{prefix}/big.bin"),
        ]),
        program,
        install,
    )
    .await;
    run(
        aws(&[
            "s3",
            "cp",
            &format!("{prefix}/big.bin"),
            down.to_str().unwrap(),
        ]),
        program,
        install,
    )
    .await;
    assert!(
        std::fs::read(&down).unwrap() == big,
        "{program}: the 20 MiB came back different"
    );
    // A copy within the store goes in parts copied from the object.
    let copied = work.join("copied.bin");
    run(
        aws(&[
            "s3",
            "cp",
            &format!("{prefix}/big.bin"),
            &format!("{prefix}/copy.bin"),
        ]),
        program,
        install,
    )
    .await;
    run(
        aws(&[
            "s3",
            "cp",
            &format!("{prefix}/copy.bin"),
            copied.to_str().unwrap(),
        ]),
        program,
        install,
    )
    .await;
    assert!(
        std::fs::read(&copied).unwrap() == big,
        "{program}: the copy differs"
    );
    let tree = work.join("tree");
    run(
        aws(&[
            "s3",
            "sync",
            tree.to_str().unwrap(),
            &format!("{prefix}/tree"),
        ]),
        program,
        install,
    )
    .await;
    let listed = run(
        aws(&["s3", "ls", "--recursive", &format!("{prefix}/tree/")]),
        program,
        install,
    )
    .await;
    assert!(
        listed.contains("tree/a.txt") && listed.contains("tree/sub/b.txt"),
        "{program}: {listed}"
    );
    // A second sync finds nothing to do; a changed file goes again.
    std::fs::write(work.join("tree/a.txt"), "changed").unwrap();
    run(
        aws(&[
            "s3",
            "sync",
            tree.to_str().unwrap(),
            &format!("{prefix}/tree"),
        ]),
        program,
        install,
    )
    .await;
    let back = work.join("back");
    run(
        aws(&[
            "s3",
            "sync",
            &format!("{prefix}/tree"),
            back.to_str().unwrap(),
        ]),
        program,
        install,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "changed"
    );
    assert_eq!(
        std::fs::read_to_string(back.join("sub/b.txt")).unwrap(),
        "b"
    );
}

#[tokio::test]
async fn the_aws_cli_from_pypi_and_debian_copies_20_mib_in_parts_and_syncs() {
    let app = app("s3cli");
    let (nimbus, endpoint) = start(&app, None).await;
    let key = access_key(
        &nimbus,
        "cli",
        &["bucket:photos:read", "bucket:photos:write"],
    )
    .await;
    for program in ["aws", "/usr/bin/aws"] {
        cp_and_sync(program, &endpoint, &key, app.dir.path(), &[]).await;
    }
}

#[tokio::test]
async fn over_https_bodies_with_trailing_checksums_are_checked_and_stored() {
    let app = app("s3tls");
    let tls = support::certificate(app.dir.path());
    let (nimbus, endpoint) = start(&app, Some(&tls)).await;
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let key = access_key(
        &nimbus,
        "tls",
        &["bucket:photos:read", "bucket:photos:write"],
    )
    .await;
    // The clients trust the certificate as their CA bundle.
    python("s3_https.py", &endpoint, &key, &[("S3_CA_BUNDLE", &tls.0)]).await;
    for program in ["aws", "/usr/bin/aws"] {
        cp_and_sync(
            program,
            &endpoint,
            &key,
            app.dir.path(),
            &["--ca-bundle", &tls.0],
        )
        .await;
    }
    nimbus
        .stderr
        .wait_until("the event of the upload over HTTPS", |lines| {
            created_keys(lines)
                .iter()
                .any(|k| k == "tls/multi")
                .then_some(())
        })
        .await;
}
