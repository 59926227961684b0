//! Listener bounds: the connection cap and the header-read timeout that
//! protects against clients who open connections and never finish a request
//! (or, between requests, leave them idle).

mod support;

use nimbus_test_programs as programs;
use std::time::Duration;
use support::{TestApp, client, raw_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = TestApp::new("slowloris")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--header-read-timeout-ms", "200"]).await;
    let mut stream = TcpStream::connect(host(&nimbus.gateway)).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The server closes the connection once the 200 ms timeout passes; the
    // default timeout (10 s) would not close it within this bound.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was left open");
    // Complete requests on fresh connections are unaffected.
    assert_eq!(
        client()
            .get(nimbus.url("/hello"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_client_that_sends_part_of_the_http2_preface_is_disconnected() {
    let app = TestApp::new("preface")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--header-read-timeout-ms", "200"]).await;
    // Until the bytes differ from `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` or
    // hold all of it, the protocol is unknown; such a client held its slot
    // for as long as it liked.
    for prefix in [&b"P"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r"] {
        let mut stream = TcpStream::connect(host(&nimbus.gateway)).await.unwrap();
        stream.write_all(prefix).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "a connection that sent {:?} was left open",
            String::from_utf8_lossy(prefix)
        );
    }
    // A request that starts like the preface (`P...`) and turns out HTTP/1
    // is served, as is an HTTP/2 client with prior knowledge.
    let put = raw_request(
        host(&nimbus.gateway),
        b"PUT /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!put.is_empty(), "the PUT got an answer");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = TestApp::new("idle")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--header-read-timeout-ms", "200"]).await;
    let mut stream = TcpStream::connect(host(&nimbus.gateway)).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The response arrives and the connection stays open for another
    // request; sending none, the client is disconnected once the timeout
    // passes (the default 10 s would not close it within this bound).
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle connection was left open");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431_and_the_server_stays_up() {
    let app = TestApp::new("headers")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--max-header-bytes", "16384"]).await;
    let big = "a".repeat(20_000);
    let request = format!("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_request(host(&nimbus.gateway), request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Under the limit is fine, and the server is still there.
    let response = client()
        .get(nimbus.url("/hello"))
        .header("x-medium", "a".repeat(8_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = TestApp::new("capped")
        .function("hello", programs::HELLO, "")
        .route("/hello", "hello", "");
    let nimbus = app.start_with(&["--max-connections", "1"]).await;
    let holder = TcpStream::connect(host(&nimbus.gateway)).await.unwrap();
    // Make sure the holder's connection is the one being served.
    let mut holder = holder;
    holder
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    holder.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let waiting = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .get(nimbus.url("/hello"))
        .send()
        .await;
    assert!(
        waiting.is_err_and(|e| e.is_timeout()),
        "a second connection was served past the cap"
    );

    drop(holder);
    let served = client().get(nimbus.url("/hello")).send().await.unwrap();
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408() {
    let app = TestApp::new("slowbody")
        .function("echo", programs::ECHO, "")
        .route("/echo", "echo", "");
    let nimbus = app.start_with(&["--body-read-timeout-ms", "200"]).await;
    // Without the timeout the server would wait for the other 5 bytes forever.
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        raw_request(
            host(&nimbus.gateway),
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello",
        ),
    )
    .await
    .expect("the server kept waiting for the body");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

/// Reads one HTTP/1.1 response (head and a `content-length` body) from
/// `stream`, leaving the connection open.
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the connection closed mid-head: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head + &String::from_utf8_lossy(&body)
}

/// A listener that answers before a request's body has arrived (a refusal
/// that spares the upload) cannot reuse the connection; it says
/// `Connection: close` and closes it, on the gateway and on the admin API.
#[tokio::test]
async fn an_answer_given_before_the_body_arrived_says_connection_close() {
    let app = TestApp::new("early")
        .function("echo", programs::ECHO, "")
        .route("/keyed", "echo", "auth = \"api_key\"")
        .route("/small", "echo", "max_body_bytes = 16");
    let nimbus = app.start().await;
    let partial = |path: &str, extra: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n{extra}\r\n0123456789")
    };
    let cases = [
        (&nimbus.gateway, partial("/keyed", ""), "401"),
        (&nimbus.gateway, partial("/small", ""), "413"),
        (&nimbus.gateway, partial("/nowhere", ""), "404"),
        (
            &nimbus.gateway,
            "POST /keyed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                .to_owned(),
            "401",
        ),
        (&nimbus.admin, partial("/v1/queues/q/messages", ""), "401"),
    ];
    for (listener, request, status) in cases {
        // `raw_request` reads until the server closes the connection.
        let response = tokio::time::timeout(
            support::PATIENCE,
            raw_request(host(listener), request.as_bytes()),
        )
        .await
        .expect("the connection was not closed")
        .to_ascii_lowercase();
        assert!(
            response.starts_with(&format!("http/1.1 {status}")),
            "{request}: {response}"
        );
        assert!(
            response.contains("\r\nconnection: close\r\n"),
            "{request}: {response}"
        );
    }

    // An answer to a request whose body was read (or that had none) keeps
    // the connection for the next request.
    for listener in [&nimbus.gateway, &nimbus.admin] {
        let mut stream = TcpStream::connect(host(listener)).await.unwrap();
        stream
            .write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let first = read_one_response(&mut stream).await;
        assert!(!first.contains("connection: close"), "{first}");
        stream
            .write_all(b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let second = read_one_response(&mut stream).await;
        assert!(second.starts_with("http/1.1 "), "{second}");
    }
}
