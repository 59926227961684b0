//! Where the password comes from when the URL has none, against the TLS
//! server (SCRAM over `verify-full`): `PGPASSWORD`, then the pass file. The
//! environment belongs to the whole process, so no case here changes this
//! process's: each runs the connection in a child process of this binary
//! (`harness = false`), with the environment given to that child alone.
//! The child only connects and reports; the assertions are the parent's.

use std::path::Path;
use std::process::Command;

/// Set in a child: the URL to connect to.
const CHILD_URL: &str = "NIMBUS_TEST_PASSWORD_URL";

fn main() {
    match std::env::var(CHILD_URL) {
        Ok(url) => child(&url),
        Err(_) => parent(),
    }
}

/// Connects, sends and receives a message, and prints `connected` or
/// `refused: ERROR`.
fn child(url: &str) {
    use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = nimbus_store_postgres::PgOptions {
            url: url.to_owned(),
            relaxed_durability: false,
            pool_size: 1,
        };
        let store = match nimbus_store_postgres::PgStore::connect(&options, None).await {
            Ok(store) => store,
            Err(e) => {
                println!("refused: {e}");
                return;
            }
        };
        let queue = QueueConfig {
            name: "password".to_owned(),
            visibility_timeout_ms: 30_000,
            retention_ms: 3_600_000,
            delay_ms: 0,
            max_message_bytes: 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        };
        store.declare_queues(&[queue]).await.unwrap();
        let body = b"with a password from elsewhere".to_vec();
        store
            .send(
                "password",
                vec![SendMessage {
                    body: body.clone(),
                    ..SendMessage::default()
                }],
            )
            .await
            .unwrap();
        let received = store.receive("password", 1, None).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].body, body);
        println!("connected");
    });
}

/// What a child printed.
fn run_child(url: &str, env: &[(&str, &str)], home: &Path) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(CHILD_URL, url)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        // No ~/.pgpass of whoever runs the tests.
        .env("HOME", home);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn case(passed: &mut u32, name: &str, test: impl FnOnce()) {
    test();
    *passed += 1;
    println!("test {name} ... ok");
}

fn parent() {
    let server = nimbus_test_postgres::tls_server();
    let home = tempfile::tempdir().unwrap();
    let ca = server.ca_file();
    let url = |password: Option<&str>| {
        format!(
            "{}&sslmode=verify-full&sslrootcert={}",
            server.url("localhost", password, &server.fresh_schema()),
            ca.display()
        )
    };
    let right = server.password();
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let mut passed = 0;

    case(&mut passed, "the_password_from_pgpassword_is_used", || {
        let out = run_child(&url(None), &[("PGPASSWORD", right)], home.path());
        assert_eq!(out, "connected");
    });

    case(
        &mut passed,
        "a_wrong_pgpassword_is_refused_and_shown_nowhere_in_the_error",
        || {
            let out = run_child(&url(None), &[("PGPASSWORD", &wrong)], home.path());
            assert!(
                out.starts_with("refused:") && out.contains("password authentication failed"),
                "{out}"
            );
            assert!(!out.contains(&wrong) && !out.contains(right), "{out}");
        },
    );

    case(
        &mut passed,
        "a_password_in_the_url_wins_over_pgpassword",
        || {
            let out = run_child(&url(Some(right)), &[("PGPASSWORD", &wrong)], home.path());
            assert_eq!(out, "connected");
        },
    );

    let pass_file = home.path().join("pgpass");
    std::fs::write(
        &pass_file,
        format!("localhost:{}:nimbus:nimbus:{right}\n", server.port()),
    )
    .unwrap();
    let pass_file_env = [("PGPASSFILE", pass_file.to_str().unwrap())];
    let chmod = |mode| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(mode)).unwrap();
    };

    case(
        &mut passed,
        "the_password_from_the_pass_file_is_used",
        || {
            chmod(0o600);
            let out = run_child(&url(None), &pass_file_env, home.path());
            assert_eq!(out, "connected");
        },
    );

    case(
        &mut passed,
        "a_pass_file_others_can_read_is_ignored",
        || {
            chmod(0o644);
            let out = run_child(&url(None), &pass_file_env, home.path());
            assert!(out.starts_with("refused:"), "{out}");
            assert!(!out.contains(right), "{out}");
        },
    );
    println!("\ntest result: ok. {passed} passed");
}
