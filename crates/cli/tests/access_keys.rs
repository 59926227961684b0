//! Access keys through the real CLI and server: created with their secret
//! shown once, listed without it, kept apart from user secrets, surviving a
//! restart, revoked; and the S3 and SQS listeners over HTTPS.

mod support;

use support::{Nimbus, TestApp, certificate, cli};

fn json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the CLI prints JSON")
}

fn app() -> TestApp {
    TestApp::new("keys")
}

#[tokio::test]
async fn a_key_is_shown_once_listed_without_its_secret_and_revoked() {
    let app = app();
    let manifest = app.write();
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &[]).await;
    let created = json(
        &cli(
            &nimbus,
            &[
                "access-key",
                "create",
                "ci",
                "--allow",
                "queue:orders:send",
                "--allow",
                "bucket:photos/uploads/:write",
            ],
        )
        .await,
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(id.starts_with("NIMB") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(
        created["grants"],
        serde_json::json!(["queue:orders:send", "bucket:photos/uploads/:write"])
    );

    let listed = cli(&nimbus, &["access-key", "list", "-o", "json"]).await;
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        !text.contains(&secret),
        "a listing never shows a secret: {text}"
    );
    let listed = json(&listed);
    assert_eq!(listed["access_keys"][0]["id"], id.as_str());
    assert_eq!(listed["access_keys"][0]["name"], "ci");
    // Kept in the vault, but never among the user's secrets.
    let secrets = json(&cli(&nimbus, &["secret", "list", "-o", "json"]).await);
    assert_eq!(secrets["secrets"], serde_json::json!([]));

    // Bad grants are refused with what is accepted, and nothing is stored.
    for (grant, says) in [
        (
            "queue:orders:eat",
            "they have `send`, `receive` and `purge`",
        ),
        ("table:t:read", "is not a grant"),
        ("bucket:photos/../x:read", "invalid key prefix"),
    ] {
        let refused = cli(&nimbus, &["access-key", "create", "bad", "--allow", grant]).await;
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(says) && stderr.contains("400"),
            "{grant}: {stderr}"
        );
    }
    assert_eq!(
        json(&cli(&nimbus, &["access-key", "list", "-o", "json"]).await)["access_keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Sealed in the store: it survives a restart.
    nimbus.terminate();
    let mut nimbus = nimbus;
    assert_eq!(nimbus.exit_code().await, Some(0));
    let nimbus = Nimbus::start(&manifest, &app.data_dir(), &[]).await;
    let listed = json(&cli(&nimbus, &["access-key", "list", "-o", "json"]).await);
    assert_eq!(listed["access_keys"][0]["id"], id.as_str());

    let revoked = cli(&nimbus, &["access-key", "revoke", &id]).await;
    assert!(revoked.status.success());
    let listed = json(&cli(&nimbus, &["access-key", "list", "-o", "json"]).await);
    assert_eq!(listed["access_keys"], serde_json::json!([]));
    let again = cli(&nimbus, &["access-key", "revoke", &id]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("404"));
}

#[tokio::test]
async fn the_endpoints_speak_https_with_the_given_certificate() {
    let app = app();
    let manifest = app.write();
    let (cert, key) = certificate(app.dir.path());
    let nimbus = Nimbus::start(
        &manifest,
        &app.data_dir(),
        &[
            "--s3-listen",
            "127.0.0.1:0",
            "--sqs-listen",
            "127.0.0.1:0",
            "--aws-tls-cert",
            &cert,
            "--aws-tls-key",
            &key,
        ],
    )
    .await;
    // Self-signed, as a test or a private network's would be.
    let trusting = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    for name in ["s3", "sqs"] {
        let line = nimbus
            .stdout
            .wait_for(name, |l| l.starts_with(&format!("{name} listening on ")))
            .await;
        let url = line.rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("https://127.0.0.1:"), "{line}");
        // An unsigned request reaches the endpoint over TLS (and is refused
        // there, not by the transport).
        let answer = trusting.get(&url).send().await.expect("a TLS answer");
        assert!(answer.status().is_client_error() || answer.status().is_server_error());
        // Plain HTTP to the TLS port gets no HTTP answer.
        let plain = url.replacen("https://", "http://", 1);
        assert!(
            support::client().get(&plain).send().await.is_err(),
            "{plain}"
        );
    }
    // The endpoints stop with the server.
    nimbus.terminate();
    let mut nimbus = nimbus;
    assert_eq!(nimbus.exit_code().await, Some(0));
}

#[tokio::test]
async fn an_unreadable_certificate_stops_the_start_with_the_flag_named() {
    let app = app();
    let manifest = app.write();
    let missing = app.dir.path().join("missing.pem");
    let output = support::nimbus(
        &[
            "up",
            manifest.to_str().unwrap(),
            "--data-dir",
            app.data_dir().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--s3-listen",
            "127.0.0.1:0",
            "--aws-tls-cert",
            missing.to_str().unwrap(),
            "--aws-tls-key",
            missing.to_str().unwrap(),
        ],
        app.dir.path(),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--aws-tls-cert"), "{stderr}");
}

#[tokio::test]
async fn a_client_silent_after_its_tls_handshake_is_closed_at_the_header_timeout() {
    let app = app();
    let manifest = app.write();
    let (cert, key) = certificate(app.dir.path());
    let nimbus = Nimbus::start(
        &manifest,
        &app.data_dir(),
        &[
            "--s3-listen",
            "127.0.0.1:0",
            "--aws-tls-cert",
            &cert,
            "--aws-tls-key",
            &key,
            "--header-read-timeout-ms",
            "300",
        ],
    )
    .await;
    let line = nimbus
        .stdout
        .wait_for("s3", |l| l.starts_with("s3 listening on "))
        .await;
    let addr = line.rsplit("https://").next().unwrap().to_owned();
    // openssl completes the handshake, then sends nothing (its stdin stays
    // open); it exits when the server closes the connection.
    let mut client = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs: apt-get install openssl");
    let closed = tokio::time::timeout(support::PATIENCE, client.wait()).await;
    assert!(
        closed.is_ok(),
        "the server kept a silent TLS connection open"
    );
    let mut stderr = String::new();
    use tokio::io::AsyncReadExt as _;
    client
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    // It did get as far as a handshake (the certificate's subject shows).
    assert!(
        stderr.contains("CN = localhost") || stderr.contains("CN=localhost"),
        "{stderr}"
    );
}
