//! Outbound HTTP from functions, through the real server and the `fetch`
//! guest: the allow-list, SSRF protection against a canary listener on
//! loopback, the response size cap and the timeouts.

mod support;

use nimbus_test_programs as programs;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Nimbus, TestApp, client, invocation_id};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// What a canary does with each connection it accepts.
#[derive(Clone, Copy)]
enum Reply {
    /// 200 with this body, then close.
    Body(&'static str),
    /// 200 with this many bytes and a `content-length`.
    Sized(usize),
    /// 200 with this many bytes in chunks, no `content-length`.
    Chunked(usize),
    /// A response head and the first bytes of the body, then nothing.
    Stall,
    /// Reads the request and never answers.
    Silent,
    /// 200 with a head of about this many bytes (4 KiB headers, so few that
    /// hyper's cap of 100 headers is not what stops it), no body.
    BigHead(usize),
    /// 200 with a chunked body that never ends: 64 KiB chunks as fast as
    /// the reader takes them, until it goes away.
    Endless,
}

/// A listener on loopback that counts every connection it accepts: an
/// outbound request that should have been refused shows up as a hit.
struct Canary {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Canary {
    async fn start(reply: Reply) -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (counter, seen) = (hits.clone(), heads.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, reply, seen.clone()));
            }
        });
        Canary { addr, hits, heads }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, heads: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        // A TLS ClientHello (record type 0x16) gets what a plaintext HTTP
        // server says to bytes it cannot parse.
        if head.first() == Some(&0x16) {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let response = match reply {
        Reply::Body(body) => format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Sized(n) => format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n{}",
            "x".repeat(n)
        ),
        Reply::Chunked(n) => {
            let mut out =
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .to_owned();
            for chunk in "x".repeat(n).as_bytes().chunks(512) {
                out.push_str(&format!(
                    "{:x}\r\n{}\r\n",
                    chunk.len(),
                    "x".repeat(chunk.len())
                ));
            }
            out.push_str("0\r\n\r\n");
            out
        }
        Reply::Stall => "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst ten.".to_owned(),
        Reply::Silent => String::new(),
        Reply::BigHead(n) => {
            let mut out = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n".to_owned();
            for i in 0..n / 4096 {
                out.push_str(&format!("x-filler-{i}: {}\r\n", "f".repeat(4072)));
            }
            out.push_str("\r\n");
            out
        }
        Reply::Endless => {
            let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            return;
        }
    };
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    if matches!(reply, Reply::Stall | Reply::Silent) {
        // Keep the connection open without a word until the test ends.
        std::future::pending::<()>().await;
    }
}

/// An app with the `fetch` guest behind `POST /fetch`, under `settings`.
async fn fetch_app(name: &str, settings: &str) -> Nimbus {
    TestApp::new(name)
        .function("fetch", programs::FETCH, settings)
        .route("/fetch", "fetch", "methods = [\"POST\"]")
        .start()
        .await
}

/// What the guest reported for one outbound request.
struct Fetched {
    status: u16,
    upstream_status: Option<String>,
    body: String,
    invocation_id: String,
}

async fn fetch(nimbus: &Nimbus, query: &str, target: &str) -> Fetched {
    let response = client()
        .post(nimbus.url(&format!("/fetch{query}")))
        .body(target.to_owned())
        .send()
        .await
        .unwrap();
    Fetched {
        status: response.status().as_u16(),
        upstream_status: response
            .headers()
            .get("x-upstream-status")
            .map(|v| v.to_str().unwrap().to_owned()),
        invocation_id: invocation_id(&response),
        body: response.text().await.unwrap(),
    }
}

fn assert_error(fetched: &Fetched, target: &str, code: &str) {
    assert_eq!(
        (fetched.status, fetched.body.contains(code)),
        (502, true),
        "{target}: expected {code}, got {} {}",
        fetched.status,
        fetched.body
    );
}

#[tokio::test]
async fn a_private_host_allowed_by_address_is_reached_and_its_answer_comes_back() {
    let canary = Canary::start(Reply::Body("hello from the canary")).await;
    let port = canary.port();
    let nimbus = fetch_app(
        "egress-allowed",
        &format!("allowed_private_hosts = [\"http://127.0.0.1:{port}\"]"),
    )
    .await;

    let fetched = fetch(&nimbus, "", &format!("http://127.0.0.1:{port}/greet?x=1")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.upstream_status.as_deref(), Some("200"));
    assert_eq!(fetched.body, "hello from the canary");
    assert_eq!(canary.hits(), 1);
    let head = canary.heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /greet?x=1 http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    // The request carries trace context on: a child of the invocation, in
    // the trace the caller of the gateway started.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = client()
        .post(nimbus.url("/fetch"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(format!("http://127.0.0.1:{port}/traced"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let head = canary.heads.lock().unwrap()[1].to_ascii_lowercase();
    assert!(
        head.contains(&format!("traceparent: 00-{trace}-")),
        "{head}"
    );
    assert!(!head.contains("00f067aa0ba902b7"), "{head}");
}

#[tokio::test]
async fn outbound_requests_are_denied_by_default_and_audited() {
    let canary = Canary::start(Reply::Body("should not be reached")).await;
    let nimbus = fetch_app("egress-default", "").await;
    let target = format!("http://127.0.0.1:{}/", canary.port());

    let fetched = fetch(&nimbus, "", &target).await;
    assert_error(&fetched, &target, "HttpRequestDenied");
    let audit = nimbus
        .stderr
        .wait_for("with the audit line", |l| {
            l.contains("nimbus::audit") && l.contains(&fetched.invocation_id)
        })
        .await;
    assert!(
        audit.contains("function=fetch")
            && audit.contains(&format!("destination=http://127.0.0.1:{}", canary.port()))
            && audit.contains("allowed_outbound_hosts"),
        "{audit}"
    );
    assert_eq!(canary.hits(), 0);
}

#[tokio::test]
async fn requests_that_miss_the_allow_list_by_scheme_host_or_port_are_denied() {
    let canary = Canary::start(Reply::Body("should not be reached")).await;
    let port = canary.port();
    let other_port = if port == u16::MAX { port - 1 } else { port + 1 };
    let nimbus = fetch_app(
        "egress-mismatch",
        &format!("allowed_private_hosts = [\"http://127.0.0.1:{port}\"]"),
    )
    .await;

    for target in [
        format!("https://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://127.0.0.1:{other_port}/"),
        "http://127.0.0.1/".to_owned(),
    ] {
        let fetched = fetch(&nimbus, "", &target).await;
        assert_error(&fetched, &target, "HttpRequestDenied");
    }
    // Credentials in the authority are refused rather than sent on.
    let target = format!("http://user:secret@127.0.0.1:{port}/");
    assert_error(
        &fetch(&nimbus, "", &target).await,
        &target,
        "HttpRequestUriInvalid",
    );
    assert_eq!(canary.hits(), 0);
    // The entry itself still works: the denials were about the mismatch.
    let fetched = fetch(&nimbus, "", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(canary.hits(), 1);
}

#[tokio::test]
async fn wildcards_match_any_scheme_and_port_and_a_suffix_only_below_it() {
    let canary = Canary::start(Reply::Body("wildcard")).await;
    let port = canary.port();
    let nimbus = fetch_app(
        "egress-wildcards",
        "allowed_private_hosts = [\"*://127.0.0.1:*\", \"http://*.nimbus-test.invalid:*\"]",
    )
    .await;

    let fetched = fetch(&nimbus, "", &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!((fetched.status, fetched.body.as_str()), (200, "wildcard"));
    assert_eq!(canary.hits(), 1);

    // Names outside `*.nimbus-test.invalid` are refused before any lookup
    // (so no DNS query leaves the machine); that subdomains do match is
    // covered by the manifest crate's matcher tests.
    for target in [
        format!("http://nimbus-test.invalid:{port}/"),
        format!("http://evilnimbus-test.invalid:{port}/"),
        format!("http://nimbus-test.invalid.evil.net:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        assert_error(
            &fetch(&nimbus, "", &target).await,
            &target,
            "HttpRequestDenied",
        );
    }
    assert_eq!(canary.hits(), 1);
}

#[tokio::test]
async fn the_ssrf_corpus_never_reaches_the_canary() {
    let canary = Canary::start(Reply::Body("canary reached")).await;
    let port = canary.port();
    let nimbus = fetch_app("egress-ssrf", "allowed_outbound_hosts = [\"http://*:*\"]").await;

    // Every way of writing loopback, and names that resolve to it: refused
    // after resolution, before any connection.
    let loopback = [
        "127.0.0.1",
        "127.0.0.2",
        "localhost",
        "LocalHost",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "0.0.0.0",
        "0",
        "[::1]",
        "[::]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::]",
    ];
    // Internal ranges elsewhere: refused before a connect is even tried,
    // so the answer is a denial and not a connect timeout.
    let internal = [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "100.100.100.200",
        "[fc00::1]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "224.0.0.1",
        "255.255.255.255",
        // IPv6 outside global unicast or in an IANA special-purpose block:
        // the IPv4-translated forms of loopback and of the metadata address,
        // benchmarking, ORCHID and ORCHIDv2, and reserved space.
        "[::ffff:0:7f00:1]",
        "[::ffff:0:a9fe:a9fe]",
        "[2001:2::1]",
        "[2001:10::1]",
        "[2001:20::1]",
        "[1::1]",
        "[4000::1]",
        "[fe00::1]",
    ];
    let targets = loopback
        .iter()
        .map(|host| format!("http://{host}:{port}/"))
        .chain(
            internal
                .iter()
                .map(|host| format!("http://{host}/latest/meta-data/")),
        );
    for target in targets {
        // Whatever an inbound request says about hosts is not a destination.
        let response = client()
            .post(nimbus.url("/fetch"))
            .header("x-forwarded-host", format!("127.0.0.1:{port}"))
            .header("forwarded", format!("host=127.0.0.1:{port}"))
            .body(target.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, 502, "{target}: {body}");
        assert!(
            body.contains("ErrorCode::DestinationIpProhibited"),
            "{target}: {body}"
        );
    }
    nimbus
        .stderr
        .wait_for_count(
            "with an audit line per refusal",
            loopback.len() + internal.len(),
            |l| l.contains("nimbus::audit") && l.contains("allowed_private_hosts"),
        )
        .await;
    let metadata = nimbus
        .stderr
        .wait_for("with the metadata refusal", |l| {
            l.contains("nimbus::audit") && l.contains("destination=http://169.254.169.254")
        })
        .await;
    assert!(metadata.contains("cloud metadata"), "{metadata}");
    assert_eq!(canary.hits(), 0, "the canary was reached");
}

#[tokio::test]
async fn a_response_larger_than_the_cap_is_an_error_not_a_truncated_body() {
    let at_cap = Canary::start(Reply::Sized(1024)).await;
    let announced = Canary::start(Reply::Sized(4096)).await;
    let chunked = Canary::start(Reply::Chunked(4096)).await;
    let nimbus = fetch_app(
        "egress-size",
        "allowed_private_hosts = [\"http://127.0.0.1:*\"]\nmax_outbound_response_bytes = 1024",
    )
    .await;

    let fetched = fetch(&nimbus, "", &format!("http://127.0.0.1:{}/", at_cap.port())).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.body.len(), 1024);

    let target = format!("http://127.0.0.1:{}/", announced.port());
    assert_error(
        &fetch(&nimbus, "", &target).await,
        &target,
        "HttpResponseBodySize(Some(4096))",
    );
    let target = format!("http://127.0.0.1:{}/", chunked.port());
    let fetched = fetch(&nimbus, "", &target).await;
    assert_eq!(fetched.status, 502, "{}", fetched.body);
    assert!(
        fetched.body.contains("body size exceeds limit"),
        "{target}: {}",
        fetched.body
    );
    assert_eq!((at_cap.hits(), announced.hits(), chunked.hits()), (1, 1, 1));
}

#[tokio::test]
async fn a_silent_upstream_times_out_at_the_cap_even_if_the_guest_asks_for_longer() {
    let silent = Canary::start(Reply::Silent).await;
    let stalled = Canary::start(Reply::Stall).await;
    let nimbus = fetch_app(
        "egress-timeout",
        "allowed_private_hosts = [\"http://127.0.0.1:*\"]\noutbound_timeout_ms = 300",
    )
    .await;

    // A wait for the response head fails the request with an error code; a
    // wait inside the body fails the body stream, whose error wasi-http
    // hands the guest as text.
    for (canary, query, error) in [
        (
            &silent,
            "?first_byte_timeout_ms=60000",
            "ErrorCode::ConnectionReadTimeout",
        ),
        (&stalled, "", "connection read timeout"),
    ] {
        let target = format!("http://127.0.0.1:{}/", canary.port());
        let started = Instant::now();
        let fetched = fetch(&nimbus, query, &target).await;
        let waited = started.elapsed();
        assert_error(&fetched, &target, error);
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{target}: answered after {waited:?}"
        );
        assert_eq!(canary.hits(), 1);
    }
}

#[tokio::test]
async fn a_guest_may_ask_for_a_shorter_first_byte_timeout_than_the_cap() {
    let silent = Canary::start(Reply::Silent).await;
    // The default cap (10 s) would outlast the bound below; the guest's
    // 200 ms must be what ends the wait.
    let nimbus = fetch_app(
        "egress-guest-timeout",
        "allowed_private_hosts = [\"http://127.0.0.1:*\"]",
    )
    .await;
    let target = format!("http://127.0.0.1:{}/", silent.port());
    let started = Instant::now();
    let fetched = fetch(&nimbus, "?first_byte_timeout_ms=200", &target).await;
    assert_error(&fetched, &target, "ConnectionReadTimeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connection_failures_are_reported_to_the_guest_by_kind() {
    let plaintext = Canary::start(Reply::Body("not TLS")).await;
    // A port with nothing listening: bound, then released.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nimbus = fetch_app(
        "egress-failures",
        "allowed_private_hosts = [\"*://127.0.0.1:*\"]\noutbound_timeout_ms = 5000",
    )
    .await;

    let target = format!("http://127.0.0.1:{closed_port}/");
    assert_error(
        &fetch(&nimbus, "", &target).await,
        &target,
        "ConnectionRefused",
    );
    // https is never downgraded: a plaintext server fails the handshake.
    let target = format!("https://127.0.0.1:{}/", plaintext.port());
    assert_error(
        &fetch(&nimbus, "", &target).await,
        &target,
        "ErrorCode::Tls",
    );
    assert_eq!(plaintext.hits(), 1);
}

#[tokio::test]
async fn a_response_head_past_the_outbound_read_buffer_fails_the_request() {
    // hyper stops growing its read buffer at the cap, but one read may add
    // as much again: a head past twice the cap fails, one well within it
    // passes. (hyper's default buffer, about 400 KiB, took both.)
    let buffer = nimbus_engine::MAX_OUTBOUND_READ_BUFFER_BYTES;
    let big = Canary::start(Reply::BigHead(2 * buffer + buffer / 2)).await;
    let small = Canary::start(Reply::BigHead(buffer / 4)).await;
    let nimbus = fetch_app(
        "egress-big-head",
        &format!(
            "allowed_private_hosts = [\"http://127.0.0.1:{}\", \"http://127.0.0.1:{}\"]",
            big.port(),
            small.port()
        ),
    )
    .await;
    let fine = fetch(&nimbus, "", &format!("http://127.0.0.1:{}/", small.port())).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    let target = format!("http://127.0.0.1:{}/", big.port());
    let refused = fetch(&nimbus, "", &target).await;
    assert_error(&refused, &target, "HttpResponseHeaderSectionSize");
}

#[tokio::test]
async fn outbound_connections_per_invocation_are_capped_and_freed_when_dropped() {
    let endless = Canary::start(Reply::Endless).await;
    let port = endless.port();
    let nimbus = TestApp::new("egress-hoard")
        .function(
            "hoard",
            programs::HOARD,
            &format!("allowed_private_hosts = [\"http://127.0.0.1:{port}\"]"),
        )
        .route("/hoard", "hoard", "")
        .start()
        .await;
    let cap = nimbus_engine::MAX_OUTBOUND_CONNECTIONS;
    let asked = cap + 36;
    let response = client()
        .get(nimbus.url(&format!(
            "/hoard?responses={asked}&url=http://127.0.0.1:{port}/"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    let report = response.text().await.unwrap();
    // Each held response's body streams on without being read: the server
    // keeps writing, and the host holds at most a buffer or two of it.
    assert_eq!(
        report,
        format!(
            "held {cap}\n36 x ErrorCode::ConnectionLimitReached\nafter dropping them: a response\n"
        ),
    );
    let denial = nimbus
        .stderr
        .wait_for("the audit line of the refused connections", |l| {
            l.contains("nimbus::audit")
                && l.contains(&id)
                && l.contains("outbound connections open")
        })
        .await;
    assert!(denial.contains(&format!("already has {cap}")), "{denial}");
    // The next invocation starts with every connection free again.
    let again = client()
        .get(nimbus.url(&format!("/hoard?responses=2&url=http://127.0.0.1:{port}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.text().await.unwrap(),
        "held 2\nafter dropping them: a response\n"
    );
}
