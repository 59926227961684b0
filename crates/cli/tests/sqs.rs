//! The SQS endpoint through the real `nimbus up --sqs-listen` and real
//! clients: boto3 (the AWS JSON 1.0 protocol) and Debian's AWS CLI (the
//! query protocol), driven by the scripts in `tests/aws/`, both over HTTPS
//! too, plus raw malformed requests the server must answer and survive.

mod support;

use std::path::Path;
use support::{Nimbus, cli};

const MANIFEST: &str = r#"
[app]
name = "sqs"

[queue.work]

[queue.jobs]
max_receive_count = 2
dead_letter_queue = "dead"

[queue.dead]

[queue.other]
"#;

/// A running server with the SQS endpoint, and its two keys.
struct Endpoint {
    nimbus: Nimbus,
    url: String,
    key: (String, String),
    limited: (String, String),
    _dir: tempfile::TempDir,
}

async fn create_key(nimbus: &Nimbus, name: &str, grants: &[&str]) -> (String, String) {
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
    let key: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        key["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    )
}

async fn start() -> Endpoint {
    start_with(tempfile::tempdir().unwrap(), &[]).await
}

async fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> Endpoint {
    let manifest = dir.path().join("nimbus.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let mut args = vec!["--sqs-listen", "127.0.0.1:0"];
    args.extend(extra);
    let nimbus = Nimbus::start(&manifest, &dir.path().join("data"), &args).await;
    let line = nimbus
        .stdout
        .wait_for("announcing the SQS endpoint", |l| {
            l.starts_with("sqs listening on ")
        })
        .await;
    let url = line.trim_start_matches("sqs listening on ").to_owned();
    let key = create_key(
        &nimbus,
        "main",
        &[
            "queue:work:send",
            "queue:work:receive",
            "queue:work:purge",
            "queue:jobs:send",
            "queue:jobs:receive",
            "queue:dead:receive",
            "queue:ghost:receive",
        ],
    )
    .await;
    let limited = create_key(&nimbus, "limited", &["queue:other:send"]).await;
    Endpoint {
        nimbus,
        url,
        key,
        limited,
        _dir: dir,
    }
}

/// Runs one of the client scripts against `endpoint`; fails with its
/// output (and the server's log) unless every check passed.
async fn run_script(endpoint: &Endpoint, script: &str, python: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/aws")
        .join(script);
    let args = [
        path.to_str().unwrap().to_owned(),
        endpoint.url.clone(),
        endpoint.key.0.clone(),
        endpoint.key.1.clone(),
        endpoint.limited.0.clone(),
        endpoint.limited.1.clone(),
    ];
    let python = python.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(args)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        endpoint.nimbus.stderr.text()
    );
    println!("{stdout}");
}

/// Runs a short boto3 program (`sqs` is a client of `endpoint` with its
/// main key) and returns what it prints.
async fn boto3(endpoint: &Endpoint, program: &str) -> String {
    require("python3", "boto3", "pip install boto3==1.43.11");
    let setup = format!(
        "import boto3\nsqs = boto3.client('sqs', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='{}', aws_secret_access_key='{}', verify=False)\n",
        endpoint.url, endpoint.key.0, endpoint.key.1
    );
    let program = format!("{setup}{program}");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-W", "ignore", "-c", &program])
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n--- server\n{}",
        String::from_utf8_lossy(&output.stderr),
        endpoint.nimbus.stderr.text()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn require(python: &str, module: &str, install: &str) {
    let found = std::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "{python} cannot import {module}: {install}");
}

#[tokio::test]
async fn boto3_speaks_sqs_over_the_json_protocol() {
    require("python3", "boto3", "pip install boto3==1.43.11");
    let endpoint = start().await;
    run_script(&endpoint, "sqs_boto3.py", "python3").await;
}

#[tokio::test]
async fn debian_awscli_speaks_sqs_over_the_query_protocol() {
    assert!(
        Path::new("/usr/bin/aws").exists(),
        "Debian's awscli is missing: apt-get install -y awscli"
    );
    let endpoint = start().await;
    run_script(&endpoint, "sqs_awscli.py", "python3").await;
}

#[tokio::test]
async fn unsigned_malformed_and_revoked_requests_are_refused_and_the_server_stays_up() {
    let endpoint = start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/", endpoint.url);
    // Unsigned, in both protocols.
    let response = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=ListQueues&Version=2012-11-05")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"].clone();
    let text = response.text().await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert_eq!(content_type, "text/xml");
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>")
            && text.contains("<Type>Sender</Type>")
            && text.contains("http://queue.amazonaws.com/doc/2012-11-05/"),
        "{text}"
    );
    let response = http
        .post(&url)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "AmazonSQS.ListQueues")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers()["x-amzn-query-error"],
        "MissingAuthenticationToken;Sender"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["__type"],
        "com.amazonaws.sqs#MissingAuthenticationToken"
    );
    // A forged signature with a hostile credential.
    let response = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=../../etc/passwd/20250101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00",
        )
        .header("x-amz-date", "20250101T000000Z")
        .body("Action=ListQueues")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Bodies past the bound: refused unread when declared, cut off at the
    // bound when not (raw requests, so the client sends only what the
    // server reads and the connection closes cleanly).
    let host = endpoint.url.trim_start_matches("http://").to_owned();
    let declared = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        nimbus_sqs::MAX_REQUEST_BYTES + 1
    );
    let answer = support::raw_request(&host, declared.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("<Code>RequestEntityTooLarge</Code>"),
        "{answer}"
    );
    let mut chunked = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.0\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        nimbus_sqs::MAX_REQUEST_BYTES * 2
    )
    .into_bytes();
    chunked.extend(std::iter::repeat_n(b' ', nimbus_sqs::MAX_REQUEST_BYTES + 1));
    let answer = support::raw_request(&host, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("com.amazonaws.sqs#RequestEntityTooLarge"),
        "{answer}"
    );
    // Not HTTP at all.
    let answer = support::raw_request(&host, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(!answer.contains(" 200 "), "{answer}");
    // Still serving: a signed request through the real client works.
    let url = boto3(
        &endpoint,
        "print(sqs.get_queue_url(QueueName='work')['QueueUrl'])",
    )
    .await;
    assert!(url.trim_end().ends_with("/000000000000/work"), "{url}");

    // A revoked key is refused at once.
    let limited = |id: &str, secret: &str| {
        format!(
            "l = boto3.client('sqs', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='{id}', aws_secret_access_key='{secret}')\n\
             try:\n    l.send_message(QueueUrl=sqs.get_queue_url(QueueName='work')['QueueUrl'].replace('/work', '/other'), MessageBody='x')\n    print('sent')\n\
             except l.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])\n",
            endpoint.url
        )
    };
    let (id, secret) = &endpoint.limited;
    assert_eq!(boto3(&endpoint, &limited(id, secret)).await.trim(), "sent");
    let revoked = cli(&endpoint.nimbus, &["access-key", "revoke", id]).await;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(
        boto3(&endpoint, &limited(id, secret)).await.trim(),
        "InvalidClientTokenId"
    );
}

#[tokio::test]
async fn over_https_queue_urls_name_https_and_messages_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = support::certificate(dir.path());
    let endpoint = start_with(dir, &["--aws-tls-cert", &cert, "--aws-tls-key", &key]).await;
    assert!(
        Path::new("/usr/bin/aws").exists(),
        "Debian's awscli is missing: apt-get install -y awscli"
    );
    assert!(
        endpoint.url.starts_with("https://127.0.0.1:"),
        "{}",
        endpoint.url
    );
    let out = boto3(
        &endpoint,
        "url = sqs.get_queue_url(QueueName='work')['QueueUrl']\n\
         print(url)\n\
         sqs.send_message(QueueUrl=url, MessageBody='over tls')\n\
         print(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)['Messages'][0]['Body'])\n",
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{}/000000000000/work", endpoint.url).as_str(),
            "over tls"
        ]
    );
    // Debian's CLI (the query protocol) trusts the certificate as its CA
    // bundle.
    let (url, id, secret) = (
        endpoint.url.clone(),
        endpoint.key.0.clone(),
        endpoint.key.1.clone(),
    );
    let debian = |args: Vec<String>| {
        let mut command = std::process::Command::new("/usr/bin/aws");
        command
            .args([
                "--endpoint-url",
                &url,
                "--ca-bundle",
                &cert,
                "--output",
                "json",
                "sqs",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "");
        async move {
            let output = tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
        }
    };
    let queue = debian(vec![
        "get-queue-url".into(),
        "--queue-name".into(),
        "work".into(),
    ])
    .await;
    let queue = queue["QueueUrl"].as_str().unwrap().to_owned();
    assert_eq!(queue, format!("{}/000000000000/work", endpoint.url));
    debian(vec![
        "send-message".into(),
        "--queue-url".into(),
        queue.clone(),
        "--message-body".into(),
        "debian over tls".into(),
    ])
    .await;
    let received = debian(vec![
        "receive-message".into(),
        "--queue-url".into(),
        queue,
        "--wait-time-seconds".into(),
        "20".into(),
    ])
    .await;
    assert_eq!(received["Messages"][0]["Body"], "debian over tls");
}
