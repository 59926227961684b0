//! Secrets through the real server and CLI: set from stdin or a file, listed
//! without values, read only by granted functions (a denial is audited),
//! sealed at rest under a key kept apart from the database, and a canary
//! value that never shows up in the server's output, an API answer or the
//! database files.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{ADMIN_TOKEN, Nimbus, TestApp, client, get_json};
use tokio::io::AsyncWriteExt as _;

/// The value that must never be seen outside a granted function.
const CANARY: &str = "canary-6e1f0b93d4a2c785-do-not-leak";

/// 64-bit FNV-1a, as the `events` test program prints it for a value read.
fn fnv1a(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// What the `events` program prints after reading `name` and getting `value`.
fn read_line(name: &str, value: &[u8]) -> String {
    format!("secret {name} len={} fnv1a={}", value.len(), fnv1a(value))
}

/// An app with `reader` granted `canary`, `from-file` and `absent`, and
/// `stranger` granted nothing.
fn app(name: &str) -> TestApp {
    TestApp::new(name)
        .function(
            "reader",
            programs::EVENTS,
            r#"allow = ["secret:canary:read", "secret:from-file:read", "secret:absent:read"]"#,
        )
        .function("stranger", programs::EVENTS, "")
}

fn key_file(app: &TestApp, name: &str) -> PathBuf {
    app.dir.path().join("keys").join(name)
}

async fn start(app: &TestApp, key: &Path) -> Nimbus {
    app.start_with(&["--secret-key-file", key.to_str().unwrap()])
        .await
}

/// Runs `nimbus secret ARGS` against `nimbus` with `stdin` piped in.
async fn secret_cli(nimbus: &Nimbus, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = tokio::process::Command::new(support::nimbus_bin())
        .arg("secret")
        .args(args)
        .env("NIMBUS_ADMIN", &nimbus.admin)
        .env("NIMBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

/// Invokes `function` with `data` and returns the API's answer as text.
async fn invoke(nimbus: &Nimbus, function: &str, data: &str) -> String {
    let response = client()
        .post(nimbus.admin_url(&format!("/v1/functions/{function}/invoke")))
        .body(data.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "invoking {function}");
    response.text().await.unwrap()
}

/// Invokes `function` with `secret:NAME` and returns the line it printed.
async fn read_secret(nimbus: &Nimbus, function: &str, name: &str) -> (String, String) {
    let answer = invoke(nimbus, function, &format!("secret:{name}")).await;
    let invocation_id = serde_json::from_str::<Value>(&answer).unwrap()["invocation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = nimbus
        .stderr
        .wait_for("with the secret read's outcome", |l| {
            l.contains(&invocation_id) && l.contains(&format!("secret {name} "))
        })
        .await;
    (line, answer)
}

async fn stop(mut nimbus: Nimbus) -> String {
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));
    nimbus
        .stderr
        .wait_for("saying the server stopped", |l| l.contains("stopped"))
        .await;
    format!("{}\n{}", nimbus.stdout.text(), nimbus.stderr.text())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_canary_secret_reaches_a_granted_function_and_nowhere_else() {
    let app = app("canary");
    let key = key_file(&app, "secrets.key");
    let nimbus = start(&app, &key).await;
    let mut answers = Vec::new();

    // Set from stdin and from a file (bytes kept exactly, newline included).
    let set = secret_cli(&nimbus, &["set", "canary"], CANARY.as_bytes()).await;
    assert!(set.status.success(), "{set:?}");
    let file_value = b"line one\nline two \xff\xfe\n".to_vec();
    let value_path = app.dir.path().join("value.bin");
    std::fs::write(&value_path, &file_value).unwrap();
    let set = secret_cli(
        &nimbus,
        &["set", "from-file", "--file", value_path.to_str().unwrap()],
        b"",
    )
    .await;
    assert!(set.status.success(), "{set:?}");
    answers.push(format!("{set:?}"));

    // Listed by name and time, never by value.
    let listed = secret_cli(&nimbus, &["list", "-o", "json"], b"").await;
    assert!(listed.status.success(), "{listed:?}");
    let listing: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<_> = listing["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["canary", "from-file"]);
    for secret in listing["secrets"].as_array().unwrap() {
        let keys: Vec<_> = secret.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["created_at_ms", "name", "updated_at_ms"]);
        assert!(secret["created_at_ms"].as_u64().unwrap() > 0);
    }
    answers.push(String::from_utf8_lossy(&listed.stdout).into_owned());

    // The granted function reads both values exactly.
    let (line, answer) = read_secret(&nimbus, "reader", "canary").await;
    assert!(
        line.contains(&read_line("canary", CANARY.as_bytes())),
        "{line}"
    );
    answers.push(answer);
    let (line, answer) = read_secret(&nimbus, "reader", "from-file").await;
    assert!(
        line.contains(&read_line("from-file", &file_value)),
        "{line}"
    );
    answers.push(answer);

    // A granted secret that is not set is not-found.
    let (line, answer) = read_secret(&nimbus, "reader", "absent").await;
    assert!(
        line.contains(r#"error=Error::NotFound("secret `absent`")"#),
        "{line}"
    );
    answers.push(answer);

    // A function without the grant is denied, and the denial is audited
    // with the function and the grant it lacked.
    let (line, answer) = read_secret(&nimbus, "stranger", "canary").await;
    assert!(
        line.contains(r#"error=Error::AccessDenied("secret:canary:read")"#),
        "{line}"
    );
    answers.push(answer);
    let audit = nimbus
        .stderr
        .wait_for("auditing the denial", |l| {
            l.contains("nimbus::audit") && l.contains("access denied")
        })
        .await;
    assert!(
        audit.contains("function=stranger") && audit.contains("grant=secret:canary:read"),
        "{audit}"
    );

    // Delete, then deleting again says it is not set.
    let deleted = secret_cli(&nimbus, &["delete", "from-file"], b"").await;
    assert!(deleted.status.success(), "{deleted:?}");
    let again = secret_cli(&nimbus, &["delete", "from-file"], b"").await;
    assert!(!again.status.success());
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("secret `from-file` is not set") && message.contains("404"),
        "{message}"
    );
    let listing = get_json(nimbus.admin_url("/v1/secrets")).await;
    assert_eq!(listing["secrets"].as_array().unwrap().len(), 1);
    answers.push(listing.to_string());

    // Errors about the canary's secret do not carry its value either.
    for response in [
        client()
            .get(nimbus.admin_url("/v1/secrets/canary"))
            .send()
            .await
            .unwrap(),
        client()
            .put(nimbus.admin_url("/v1/secrets/bad:name"))
            .body(CANARY)
            .send()
            .await
            .unwrap(),
    ] {
        assert!(response.status().is_client_error());
        answers.push(response.text().await.unwrap());
    }

    let output = stop(nimbus).await;
    assert!(output.contains("access denied"), "the output was captured");
    assert!(
        !output.contains(CANARY),
        "the canary is in the server output"
    );
    for answer in &answers {
        assert!(
            !answer.contains(CANARY),
            "the canary is in an answer: {answer}"
        );
    }
    // Sealed at rest: not in the database, its WAL or anything else in the
    // data directory; and the key is not kept there.
    let mut checked = 0;
    let mut names_seen = false;
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, CANARY.as_bytes()),
                "the canary is in {}",
                path.display()
            );
            // Names are stored in the clear: seeing one proves the scan
            // reads what the store wrote.
            names_seen |= contains(&bytes, b"canary");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the database and its WAL were checked");
    assert!(names_seen, "no secret name found in the data directory");
    assert!(app.data_dir().join("nimbus.db").is_file());
    let key_text = std::fs::read_to_string(&key).unwrap();
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!contains(&bytes, key_text.trim().as_bytes()));
        }
    }
}

#[tokio::test]
async fn a_restart_with_the_same_key_reads_the_secret_and_another_key_fails_at_start() {
    let app = app("restart");
    let key = key_file(&app, "secrets.key");
    let nimbus = start(&app, &key).await;
    let set = secret_cli(&nimbus, &["set", "canary"], CANARY.as_bytes()).await;
    assert!(set.status.success(), "{set:?}");
    stop(nimbus).await;

    let nimbus = start(&app, &key).await;
    let (line, _) = read_secret(&nimbus, "reader", "canary").await;
    assert!(
        line.contains(&read_line("canary", CANARY.as_bytes())),
        "{line}"
    );
    stop(nimbus).await;

    // Another key is refused at start; so is a key file that is missing
    // while secrets are stored (and it is not created).
    let other = key_file(&app, "other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let missing = key_file(&app, "missing.key");
    for (key, expected) in [
        (&other, format!("the secret key in {}", other.display())),
        (
            &missing,
            format!("the secret key file {} does not exist", missing.display()),
        ),
    ] {
        let output = support::nimbus(
            &[
                "up",
                app.manifest_path().to_str().unwrap(),
                "--data-dir",
                app.data_dir().to_str().unwrap(),
                "--secret-key-file",
                key.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ],
            app.dir.path(),
        );
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&expected)
                && stderr.contains("sealed with")
                && stderr.contains("--secret-key-file"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
        assert!(!stderr.contains(CANARY));
    }
    assert!(!missing.exists());
}

/// An app that never sets a secret leaves no key file behind; the first
/// secret set creates it, private, in the per-user config directory.
#[tokio::test]
async fn the_default_key_file_is_created_private_in_the_config_directory_when_first_needed() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = app("defaultkey");
    let manifest = app.write();
    let config = tempfile::tempdir().unwrap();
    let up = || {
        let mut command = tokio::process::Command::new(support::nimbus_bin());
        command
            .arg("up")
            .arg(&manifest)
            .arg("--data-dir")
            .arg(app.data_dir())
            .args(["--admin-token", ADMIN_TOKEN])
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("NIMBUS_SECRET_KEY_FILE");
        command
    };
    let key = config.path().join("nimbus/defaultkey/secrets.key");
    // Started, read from and stopped without a secret: no key file.
    let nimbus = Nimbus::spawn(up()).await;
    let (line, _) = read_secret(&nimbus, "reader", "absent").await;
    assert!(line.contains("absent"), "{line}");
    let list = secret_cli(&nimbus, &["list", "-o", "json"], b"").await;
    assert!(list.status.success(), "{list:?}");
    stop(nimbus).await;
    assert!(
        !key.exists(),
        "a key file was written for an app without secrets"
    );
    assert!(!config.path().join("nimbus").exists());

    let nimbus = Nimbus::spawn(up()).await;
    assert!(!key.exists());
    let set = secret_cli(&nimbus, &["set", "canary"], CANARY.as_bytes()).await;
    assert!(set.status.success(), "{set:?}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
    assert!(!key.starts_with(app.data_dir()));
    let created = nimbus
        .stderr
        .wait_for("reporting the new key", |l| {
            l.contains("created the secret key")
        })
        .await;
    assert!(created.contains(key.to_str().unwrap()), "{created}");
    stop(nimbus).await;

    // The next start reads the key it made and opens the secret.
    let nimbus = Nimbus::spawn(up()).await;
    let (line, _) = read_secret(&nimbus, "reader", "canary").await;
    assert!(
        line.contains(&read_line("canary", CANARY.as_bytes())),
        "{line}"
    );
    stop(nimbus).await;
}

#[tokio::test]
async fn bad_names_and_values_are_refused_with_clear_client_errors() {
    let app = app("refusals");
    let nimbus = start(&app, &key_file(&app, "secrets.key")).await;
    let put = |name: String, body: Vec<u8>| {
        client()
            .put(nimbus.admin_url(&format!("/v1/secrets/{name}")))
            .body(body)
            .send()
    };
    let error = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        (status, body["error"].as_str().unwrap().to_owned())
    };

    let (status, message) = error(put("9lives".into(), b"x".to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.contains("starts with a letter"), "{message}");
    let long = "a".repeat(129);
    let (status, message) = error(put(long, b"x".to_vec()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.contains("at most 128 characters"), "{message}");
    let (status, message) = error(put("empty".into(), Vec::new()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(message.contains("cannot be empty"), "{message}");
    let oversize = vec![b'x'; 64 * 1024 + 1];
    let (status, message) = error(put("big".into(), oversize).await.unwrap()).await;
    assert_eq!(status, 413);
    assert!(
        message.contains("over the limit of 65536 bytes"),
        "{message}"
    );

    // The largest value fits; setting it again replaces it.
    let largest = vec![b'x'; 64 * 1024];
    let created = put("big".into(), largest.clone()).await.unwrap();
    assert_eq!(created.status(), 201);
    let replaced = put("big".into(), largest.clone()).await.unwrap();
    assert_eq!(replaced.status(), 204);

    // Nothing answers with a value.
    let get = client()
        .get(nimbus.admin_url("/v1/secrets/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    let (status, message) = error(
        client()
            .delete(nimbus.admin_url("/v1/secrets/ghost"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(message.contains("secret `ghost` is not set"), "{message}");

    // The CLI takes no value argument: it cannot leak into history or `ps`.
    let output = secret_cli(&nimbus, &["set", "name", "the-value"], b"").await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unexpected argument"));
}
