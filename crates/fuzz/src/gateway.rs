//! The public gateway target: fuzz bytes become one HTTP/1.1 request, sent
//! over a real TCP connection on 127.0.0.1 to the real public gateway (the
//! server loop `nimbus_gateway::run` uses, hyper's parser, path checks,
//! routing, `x-nimbus-*` stripping, API key authentication, body limits),
//! which hands it to wasmtime-wasi-http and a real component that reflects
//! what it received (`tests/programs/examples/echo.rs`).
//!
//! Invariants checked on every input:
//! - the gateway answers with a well-formed HTTP/1.x response, or closes the
//!   connection, within a bound (never leaves a client hanging);
//! - never 5xx: the echo function cannot fail, so a 5xx means the request
//!   broke on its way to the guest (such as `new_incoming_request` refusing it);
//! - a 200 carries `x-nimbus-invocation-id`;
//! - the guest sees exactly the `x-nimbus-*` headers the gateway sets for
//!   the route the request took (never one a client sent) and never the
//!   client's `x-api-key`;
//! - for a 200, the echoed method and request target are those sent, and the
//!   echoed body is the body sent whenever the harness framed it;
//! - afterwards, a fixed sentinel request still gets its 200 and echo.

use axum::http::{HeaderValue, Method, Uri};
use nimbus_engine::{ArtifactCache, EngineSettings, LoadedFunction, Runtime, Services};
use nimbus_gateway::auth::{ApiKeys, Authenticator, NewKey};
use nimbus_gateway::{PublicGateway, Routed, Router, ServerLimits};
use nimbus_manifest::{App, RouteAuth};
use nimbus_store::HistoryStore as _;
use nimbus_store::SystemClock;
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::collections::HashMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::signal::unix::{Signal, SignalKind};

/// Environment variable naming the echo component for the cargo-fuzz
/// binary (the smoke tests pass `nimbus_test_programs::ECHO` instead).
pub const ECHO_COMPONENT_ENV: &str = "NIMBUS_FUZZ_ECHO_COMPONENT";
/// Where `cargo test` builds the echo component (`crates/test-programs`'
/// build script), used when [`ECHO_COMPONENT_ENV`] is not set.
pub const DEFAULT_ECHO_COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/programs/target/wasm32-wasip2/release/examples/echo.wasm"
);

/// Time the server gives a client to send a request head, and then its body.
/// Short, because an input that leaves a request unfinished costs this long.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the client waits for an answer or a close. Above both read
/// timeouts and the echo's work, below libFuzzer's `-timeout=10`.
const ANSWER_DEADLINE: Duration = Duration::from_secs(8);
/// Largest response the client reads; the echo of a 64 KiB input is far less.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Headers parsed from a request or a response head (hyper reads 100).
const MAX_HEADERS: usize = 128;
/// Inputs between trims of the invocation history, so a long run does not
/// grow the database without bound (`nimbus up` trims it on a timer).
const TRIM_HISTORY_EVERY: u64 = 4096;
/// Invocation records kept at a trim.
const HISTORY_RECORDS_KEPT: u64 = 1000;
/// What hyper-util reads to tell HTTP/2 (prior knowledge) from HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Route patterns a framed input can aim at (bits 3-4 of its first byte).
const TARGET_PREFIXES: [&str; 4] = ["/echo/", "/items/", "/private/", "/small"];
/// The app: every method on `/echo/...`; some methods on a route with a
/// parameter; an API key route; a route with a 16-byte body limit.
const MANIFEST_ROUTES: &str = r#"
[[trigger.http]]
route = "/echo/..."
function = "echo"
auth = "public"

[[trigger.http]]
route = "/items/{id}"
methods = ["GET", "PUT", "DELETE"]
function = "echo"
auth = "public"

[[trigger.http]]
route = "/users/{user}/files/{file}/..."
function = "echo"
auth = "public"

[[trigger.http]]
route = "/private/..."
function = "echo"
auth = "api_key"

[[trigger.http]]
route = "/small"
function = "echo"
auth = "public"
max_body_bytes = 16
"#;

/// Sent after every input: it must still be echoed. The spoofed header
/// must not reach the guest.
const SENTINEL: &[u8] = b"POST /echo/sentinel?after=input HTTP/1.1\r\nHost: fuzz\r\n\
X-Nimbus-Route: /spoofed\r\nContent-Length: 8\r\n\r\nsentinel";

/// The public gateway on 127.0.0.1 in front of the echo component, with an
/// API key for the `api_key` route.
pub struct GatewayHarness {
    runtime: tokio::runtime::Runtime,
    address: SocketAddr,
    /// The app's routes, to work out the `x-nimbus-*` headers a request
    /// that reached the guest must have had.
    router: Router,
    store: Arc<SqliteStore>,
    /// Kept alive with the server: its epoch ticker drives the functions'
    /// deadlines.
    _engine: Runtime,
    /// Kept, though a handler once installed stays for the process.
    _sigpipe: Signal,
    api_key: String,
    api_key_id: String,
    api_key_name: String,
    inputs: AtomicU64,
    // Last, so the store is closed before its directory goes.
    _dir: tempfile::TempDir,
}

/// The fuzz target: one connection per input against a gateway started
/// once per process, with the echo component from [`ECHO_COMPONENT_ENV`]
/// or [`DEFAULT_ECHO_COMPONENT`].
pub fn gateway_request(data: &[u8]) {
    static HARNESS: OnceLock<GatewayHarness> = OnceLock::new();
    HARNESS
        .get_or_init(|| {
            let component = std::env::var_os(ECHO_COMPONENT_ENV)
                .map_or_else(|| DEFAULT_ECHO_COMPONENT.into(), std::path::PathBuf::from);
            GatewayHarness::new(&component)
        })
        .run(data);
}

impl GatewayHarness {
    /// Loads `echo_component` (the `echo` test program), opens a scratch
    /// store, creates the API key and starts the gateway on a free port.
    pub fn new(echo_component: &Path) -> Self {
        assert!(
            echo_component.exists(),
            "the echo component is not at {} (build it with `cargo test -p nimbus-test-programs`, \
             or set {ECHO_COMPONENT_ENV})",
            echo_component.display()
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        // A server writing to a client that has gone gets EPIPE, as long as
        // SIGPIPE is ignored: Rust's `main` (so `nimbus up` and the tests)
        // ignores it, libFuzzer's does not, and the signal would kill the
        // fuzzer. Handling it has the same effect, for the whole process.
        let sigpipe = runtime
            .block_on(async { tokio::signal::unix::signal(SignalKind::pipe()) })
            .expect("handle SIGPIPE");
        let dir = tempfile::Builder::new()
            .prefix("nimbus-fuzz-gateway-")
            .tempdir()
            .expect("temporary directory");
        let manifest = format!(
            "[app]\nname = \"fuzz-gateway\"\n\n[function.echo]\ncomponent = '{}'\n\
             timeout_ms = 5000\nmax_concurrency = 16\nmemory_mb = 64\n{MANIFEST_ROUTES}",
            echo_component.display()
        );
        let app = App::parse(&dir.path().join("nimbus.toml"), &manifest)
            .unwrap_or_else(|e| panic!("the fuzz app does not parse: {e:?}"));
        let options = SqliteOptions {
            path: dir.path().join("nimbus.db"),
            durability: Durability::RelaxedMayLoseRecentWrites,
        };
        let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).expect("store"));
        let metrics = Arc::new(nimbus_metrics::Metrics::default());
        let (secret_key, _) =
            nimbus_vault::SecretKey::load_or_create(&dir.path().join("secrets.key"))
                .expect("secret key");
        let buckets = Arc::new(
            nimbus_bucket::Buckets::open(&app, &dir.path().join("buckets"), store.clone())
                .expect("open the buckets"),
        );

        let (keys, secrets, key, api_key) = runtime.block_on(async {
            let keys = Arc::new(ApiKeys::load(store.clone()).await.expect("load keys"));
            let (key, secret) = keys
                .create(NewKey {
                    name: "fuzz".to_owned(),
                    ..NewKey::default()
                })
                .await
                .expect("create the API key");
            let secrets = nimbus_vault::Vault::open(store.clone(), &secret_key)
                .await
                .expect("open the secret vault");
            (keys, Arc::new(secrets), key, secret)
        });
        let services = Arc::new(Services {
            tables: store.clone(),
            table_configs: Arc::new(app.tables.clone()),
            queues: store.clone(),
            secrets,
            functions: Default::default(),
            metrics: metrics.clone(),
            tracer: nimbus_trace::Tracer::disabled(),
            history: {
                let _in_runtime = runtime.enter();
                nimbus_engine::History::start(store.clone(), metrics.clone(), "fuzz")
            },
            buckets,
        });
        let engine = Runtime::new(EngineSettings::for_app(&app)).expect("wasmtime engine");
        let cache = ArtifactCache::new(dir.path().join("artifacts"));
        let mut functions = HashMap::new();
        for function in app.functions.values() {
            let (loaded, _) = engine
                .load_function(function, &cache, &services)
                .expect("load the echo component");
            let LoadedFunction::Http(loaded) = loaded else {
                panic!("{} is not an HTTP function", function.component.display());
            };
            functions.insert(function.name.clone(), Arc::new(loaded));
        }
        let limits = ServerLimits {
            header_read_timeout: READ_TIMEOUT,
            body_read_timeout: READ_TIMEOUT,
            ..ServerLimits::default()
        };
        let gateway = PublicGateway::new(
            &app,
            functions,
            Authenticator::new(keys, None),
            limits.body_read_timeout,
            metrics,
            nimbus_trace::Tracer::disabled(),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the gateway");
        let address = listener.local_addr().expect("gateway address");
        runtime.spawn(nimbus_gateway::serve(
            listener,
            Arc::new(gateway),
            limits,
            std::future::pending(),
        ));

        GatewayHarness {
            runtime,
            address,
            router: Router::new(&app.http_triggers),
            store,
            _engine: engine,
            _sigpipe: sigpipe,
            api_key,
            api_key_id: key.id,
            api_key_name: key.name,
            inputs: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// Sends the request `data` describes, checks the answer, then checks
    /// that the sentinel request is still served.
    pub fn run(&self, data: &[u8]) {
        let Some(request) = decode(data, &self.api_key) else {
            return;
        };
        let answer = self.exchange(&request);
        self.check(&request, &answer);
        self.check_sentinel();
        let n = self.inputs.fetch_add(1, Ordering::Relaxed);
        if n % TRIM_HISTORY_EVERY == TRIM_HISTORY_EVERY - 1 {
            self.runtime
                .block_on(
                    self.store
                        .expire_invocations(u64::MAX, HISTORY_RECORDS_KEPT),
                )
                .expect("trim the invocation history");
        }
    }

    /// Sends the fixed sentinel request and checks that it was echoed.
    pub fn check_sentinel(&self) {
        let request = Request::analyse(SENTINEL.to_vec(), Some(b"sentinel".to_vec()));
        let answer = self.exchange(&request);
        let Answer::Response(response) = &answer else {
            panic!("the sentinel request got no answer: the gateway is down");
        };
        assert_eq!(
            response.status,
            200,
            "the sentinel request answered {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        self.check(&request, &answer);
    }

    /// Sends `request` on a new connection and reads the first answer.
    fn exchange(&self, request: &Request) -> Answer {
        let deadline = Instant::now() + ANSWER_DEADLINE;
        let mut stream = TcpStream::connect(self.address).expect("connect to the gateway");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
            .set_write_timeout(Some(ANSWER_DEADLINE))
            .expect("write timeout");
        // The server may answer (413, 431) and close before taking every
        // byte; then writing fails and the answer is still there to read.
        let written = stream.write_all(&request.bytes);
        // An unfinished request gets an end of input, so the server stops
        // waiting for the rest at once instead of after READ_TIMEOUT. A
        // finished one does not: hyper drops the answer to a request whose
        // client half-closed before it was sent.
        let half_closed = !request.complete || written.is_err();
        if half_closed {
            let _ = stream.shutdown(Shutdown::Write);
        }
        let mut reader = Reader {
            stream,
            buf: Vec::new(),
            pos: 0,
            end: None,
            deadline,
        };
        match reader.answer(request.method.as_deref()) {
            Ok(answer) => answer,
            // A half-closed request may legitimately be cut off mid-answer.
            Err(Failure::Cut) if half_closed => Answer::Closed,
            Err(failure) => panic!(
                "{} for a request starting b\"{}\" ({}half-closed)",
                failure.describe(&reader.buf),
                request.bytes[..request.bytes.len().min(300)].escape_ascii(),
                if half_closed { "" } else { "not " }
            ),
        }
    }

    /// Checks the invariants on the answer to `request`.
    fn check(&self, request: &Request, answer: &Answer) {
        let Answer::Response(response) = answer else {
            // Closing is a fine answer to bytes that are not a request.
            return;
        };
        let shown = || {
            format!(
                "request b\"{}\" answered {} with b\"{}\"",
                request.bytes[..request.bytes.len().min(300)].escape_ascii(),
                response.status,
                response.body[..response.body.len().min(300)].escape_ascii()
            )
        };
        assert!(!(500..600).contains(&response.status), "{}", shown());
        if response.status != 200 {
            return;
        }
        let ids: Vec<&[u8]> = response
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(nimbus_gateway::INVOCATION_ID_HEADER))
            .map(|(_, value)| value.as_slice())
            .collect();
        let [invocation_id] = ids[..] else {
            panic!("a 200 without exactly one invocation id: {}", shown());
        };
        let invocation_id = String::from_utf8_lossy(invocation_id);
        assert!(!invocation_id.is_empty(), "{}", shown());
        // A HEAD answer has no body, and a 2xx to CONNECT turns the
        // connection into a tunnel: neither shows the echo.
        if matches!(request.method.as_deref(), Some("HEAD" | "CONNECT")) {
            return;
        }
        let echo: Echo = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("a 200 that is not the echo ({e}): {}", shown()));

        if let Some(method) = &request.method {
            assert_eq!(&echo.method, method, "the method changed: {}", shown());
        }
        if let Some(target) = &request.target
            && let Ok(uri) = Uri::try_from(target.as_str())
        {
            assert_eq!(echo.path, uri.path(), "the path changed: {}", shown());
            assert_eq!(
                echo.query,
                uri.query().unwrap_or_default(),
                "the query changed: {}",
                shown()
            );
        }
        if let Some(body) = &request.body {
            assert_eq!(
                echo.body,
                String::from_utf8_lossy(body),
                "the body changed: {}",
                shown()
            );
        }
        assert!(
            !echo
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("x-api-key")),
            "the guest saw the API key: {}",
            shown()
        );
        let mut seen: Vec<(String, String)> = echo
            .headers
            .iter()
            .filter(|(name, _)| name.to_ascii_lowercase().starts_with("x-nimbus-"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        seen.sort();
        let mut expected = self
            .gateway_headers(&echo.method, &echo.path, &invocation_id)
            .unwrap_or_else(|| {
                panic!(
                    "the guest ran for {} {}, which no route takes: {}",
                    echo.method,
                    echo.path,
                    shown()
                )
            });
        expected.sort();
        assert_eq!(
            seen,
            expected,
            "the guest's x-nimbus-* headers are not the gateway's: {}",
            shown()
        );
    }

    /// The `x-nimbus-*` headers the gateway gives a request for `path` that
    /// reached the function: `None` if no route takes it.
    fn gateway_headers(
        &self,
        method: &str,
        path: &str,
        invocation_id: &str,
    ) -> Option<Vec<(String, String)>> {
        let method = Method::from_bytes(method.as_bytes()).ok()?;
        let Routed::Found { trigger, matched } = self.router.route(&method, path) else {
            return None;
        };
        let mut headers = vec![
            (
                "x-nimbus-invocation-id".to_owned(),
                invocation_id.to_owned(),
            ),
            (
                "x-nimbus-route".to_owned(),
                trigger.route.as_str().to_owned(),
            ),
        ];
        for (name, value) in &matched.params {
            headers.push((format!("x-nimbus-param-{name}"), (*value).to_owned()));
        }
        if let Some(rest) = matched.rest {
            headers.push(("x-nimbus-path-rest".to_owned(), rest.to_owned()));
        }
        match &trigger.auth {
            RouteAuth::ApiKey => {
                headers.push(("x-nimbus-auth".to_owned(), "api_key".to_owned()));
                headers.push(("x-nimbus-api-key-id".to_owned(), self.api_key_id.clone()));
                headers.push((
                    "x-nimbus-api-key-name".to_owned(),
                    self.api_key_name.clone(),
                ));
            }
            _ => headers.push(("x-nimbus-auth".to_owned(), "public".to_owned())),
        }
        // The gateway leaves out a value that cannot be a header value.
        headers.retain(|(_, value)| HeaderValue::from_str(value).is_ok());
        Some(headers)
    }
}

/// What the echo component answers: the request as it saw it.
#[derive(serde::Deserialize)]
struct Echo {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The bytes sent, and what the harness knows about them.
struct Request {
    bytes: Vec<u8>,
    /// Whether the bytes hold a whole request as far as `httparse` can tell:
    /// a head that parses, and all the body it announces. If not, the client
    /// half-closes after sending them.
    complete: bool,
    /// The method and request target, when the head parses.
    method: Option<String>,
    target: Option<String>,
    /// The body, when the harness framed it (the input wrote no
    /// `Content-Length` or `Transfer-Encoding` of its own).
    body: Option<Vec<u8>>,
}

impl Request {
    fn analyse(bytes: Vec<u8>, body: Option<Vec<u8>>) -> Self {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Request::new(&mut headers);
        let parsed = head.parse(&bytes);
        let (complete, method, target) = match parsed {
            Ok(httparse::Status::Complete(n)) => (
                body_is_complete(head.headers, &bytes[n..]),
                head.method.map(str::to_owned),
                head.path.map(str::to_owned),
            ),
            // hyper waits for the rest of the head.
            Ok(httparse::Status::Partial) => (false, None, None),
            // hyper answers a head it cannot parse (400) only once it parses
            // it: on its first read (at most the 24 bytes hyper-util reads to
            // tell HTTP/2 from HTTP/1) or when a blank line after that ends
            // the head; else it waits for the header read timeout. An end of
            // input makes it stop waiting, and such a head never reaches the
            // function, so nothing is lost by sending one.
            Err(_) => (false, None, None),
        };
        // hyper-util waits for the rest of anything that may still become
        // the HTTP/2 preface (the server closes it after the header read
        // timeout); an end of input sends it on as HTTP/1 at once.
        let complete = complete && (bytes.is_empty() || !H2_PREFACE.starts_with(&bytes));
        Request {
            bytes,
            complete,
            method,
            target,
            body,
        }
    }
}

/// Whether `rest` holds all the body the request's headers announce (or
/// framing hyper refuses at once, which needs nothing more).
fn body_is_complete(headers: &[httparse::Header<'_>], rest: &[u8]) -> bool {
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if let Some(encoding) = values("transfer-encoding").next_back() {
        let chunked = String::from_utf8_lossy(encoding)
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return !chunked || chunks_are_complete(rest);
    }
    let lengths: Vec<Option<usize>> = values("content-length")
        .map(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .collect();
    match lengths[..] {
        [] => true,
        [Some(n), ..] if lengths.iter().all(|l| *l == Some(n)) => rest.len() >= n,
        // Unparsable or conflicting lengths: a 400 at once.
        _ => true,
    }
}

/// Whether `rest` holds a whole chunked body (or one hyper refuses).
fn chunks_are_complete(mut rest: &[u8]) -> bool {
    loop {
        let Ok(status) = httparse::parse_chunk_size(rest) else {
            return true;
        };
        let httparse::Status::Complete((n, size)) = status else {
            return false;
        };
        rest = &rest[n..];
        if size == 0 {
            // Trailers, then an empty line.
            return rest.starts_with(b"\r\n") || find(rest, b"\r\n\r\n").is_some();
        }
        let Some(after) = usize::try_from(size).ok().and_then(|s| s.checked_add(2)) else {
            return true;
        };
        if rest.len() < after {
            return false;
        }
        rest = &rest[after..];
    }
}

/// Reads an input as a request to send:
///
/// - first byte `c` with `c & 3 == 0`: the rest is sent as it is;
/// - otherwise the rest is `METHOD\nTARGET\nHEADER\n...\n\nBODY` and is sent
///   as `METHOD TARGET HTTP/1.1` (`HTTP/1.0` if bit 6 of `c` is set), a
///   `Host` header, an `x-api-key` header with the harness's key if bit 5
///   is set, the input's header lines, then the body: with a
///   `Content-Length` (or chunked, if bit 7 is set) unless the input's
///   headers mention `content-length` or `transfer-encoding`, then as the
///   input wrote it. If bit 2 is set, the target is prefixed with a route
///   (`TARGET_PREFIXES`, bits 3-4). Line ends may be `\n` or `\r\n`.
///
/// `None` for inputs that start with the HTTP/2 preface (the server then
/// speaks HTTP/2, which this target does not read).
fn decode(data: &[u8], api_key: &str) -> Option<Request> {
    let (&control, rest) = data.split_first()?;
    if control & 3 == 0 {
        if rest.starts_with(H2_PREFACE) {
            return None;
        }
        return Some(Request::analyse(rest.to_vec(), None));
    }
    let mut rest = rest;
    let method = take_line(&mut rest).unwrap_or(&b"GET"[..]);
    let target = take_line(&mut rest).unwrap_or_default();
    let mut header_lines = Vec::new();
    while let Some(line) = take_line(&mut rest)
        && !line.is_empty()
    {
        header_lines.push(line);
    }
    let body = rest;

    let mut bytes = Vec::with_capacity(data.len() + 128);
    bytes.extend_from_slice(method);
    bytes.push(b' ');
    if control & 4 != 0 {
        bytes.extend_from_slice(TARGET_PREFIXES[usize::from(control >> 3) & 3].as_bytes());
    }
    if target.is_empty() && control & 4 == 0 {
        bytes.push(b'/');
    }
    bytes.extend_from_slice(target);
    let version: &[u8] = if control & 0x40 != 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    };
    bytes.extend_from_slice(version);
    bytes.extend_from_slice(b"Host: fuzz\r\n");
    if control & 0x20 != 0 {
        bytes.extend_from_slice(format!("x-api-key: {api_key}\r\n").as_bytes());
    }
    let mut framed_by_input = false;
    for line in header_lines {
        let lower = line.to_ascii_lowercase();
        framed_by_input |= find(&lower, b"content-length").is_some()
            || find(&lower, b"transfer-encoding").is_some();
        bytes.extend_from_slice(line);
        bytes.extend_from_slice(b"\r\n");
    }
    if framed_by_input {
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        return Some(Request::analyse(bytes, None));
    }
    if control & 0x80 != 0 {
        bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        // Uneven chunks, so chunk boundaries fall everywhere.
        for chunk in body.chunks(7) {
            bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            bytes.extend_from_slice(chunk);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    } else {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(body);
    }
    Some(Request::analyse(bytes, Some(body.to_vec())))
}

/// Takes one line (without its `\n` or `\r\n`) off the front of `rest`.
fn take_line<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    if rest.is_empty() {
        return None;
    }
    let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (*rest, &[][..]),
    };
    *rest = tail;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What the server did with a request.
enum Answer {
    /// Closed (or reset) the connection without a response.
    Closed,
    /// Its first final response.
    Response(Response),
}

struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Why an answer is not acceptable.
enum Failure {
    /// Neither an answer nor a close before the deadline.
    Hung,
    /// Bytes that are not an HTTP/1.x response.
    Malformed(String),
    /// The connection ended in the middle of a response.
    Cut,
    TooLarge,
}

impl Failure {
    fn describe(&self, received: &[u8]) -> String {
        let received = received[..received.len().min(300)].escape_ascii();
        match self {
            Failure::Hung => format!(
                "the gateway neither answered nor closed within {ANSWER_DEADLINE:?} (received b\"{received}\")"
            ),
            Failure::Malformed(why) => {
                format!("the gateway sent a malformed response ({why}): b\"{received}\"")
            }
            Failure::Cut => {
                format!("the connection ended in the middle of a response: b\"{received}\"")
            }
            Failure::TooLarge => {
                format!("the response is over {MAX_RESPONSE_BYTES} bytes: b\"{received}\"")
            }
        }
    }
}

/// How the server ended the connection.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Fin,
    /// A reset: bytes sent before it may have been discarded.
    Reset,
}

/// Reads one HTTP/1.x answer from a connection.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the unparsed bytes start.
    pos: usize,
    end: Option<End>,
    deadline: Instant,
}

impl Reader {
    /// Reads more bytes; `false` once the connection has ended.
    fn fill(&mut self) -> Result<bool, Failure> {
        if self.end.is_some() {
            return Ok(false);
        }
        if self.buf.len() > MAX_RESPONSE_BYTES {
            return Err(Failure::TooLarge);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Hung);
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("read timeout");
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.end = Some(End::Fin);
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(Failure::Hung)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(_) => {
                self.end = Some(End::Reset);
                Ok(false)
            }
        }
    }

    /// The connection ended before a response was whole: a plain close if
    /// nothing came (or a reset may have discarded it), else a cut.
    fn ended_early(&self) -> Result<Answer, Failure> {
        if self.buf.is_empty() || self.end == Some(End::Reset) {
            Ok(Answer::Closed)
        } else {
            Err(Failure::Cut)
        }
    }

    /// The first final response to a request with `method`, skipping
    /// interim (1xx) ones.
    fn answer(&mut self, method: Option<&str>) -> Result<Answer, Failure> {
        loop {
            let (status, headers) = loop {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut head = httparse::Response::new(&mut slots);
                match head.parse(&self.buf[self.pos..]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = head.code.unwrap_or_default();
                        let headers = head
                            .headers
                            .iter()
                            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                            .collect::<Vec<_>>();
                        self.pos += n;
                        break (status, headers);
                    }
                    Ok(httparse::Status::Partial) => {
                        if !self.fill()? {
                            return self.ended_early();
                        }
                    }
                    Err(e) => return Err(Failure::Malformed(e.to_string())),
                }
            };
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let body = self.body(method, status, &headers)?;
            let Some(body) = body else {
                return self.ended_early();
            };
            return Ok(Answer::Response(Response {
                status,
                headers,
                body,
            }));
        }
    }

    /// The body of a response with `status` and `headers` to a request with
    /// `method` (RFC 9112, section 6.3); `None` if the connection ended
    /// before all of it came.
    fn body(
        &mut self,
        method: Option<&str>,
        status: u16,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Option<Vec<u8>>, Failure> {
        let values = |name: &str| {
            headers
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>()
        };
        if method == Some("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304
            || (method == Some("CONNECT") && (200..300).contains(&status))
        {
            return Ok(Some(Vec::new()));
        }
        let encodings = values("transfer-encoding");
        let lengths = values("content-length");
        if !encodings.is_empty() {
            if !lengths.is_empty() {
                return Err(Failure::Malformed(
                    "both Transfer-Encoding and Content-Length".into(),
                ));
            }
            if encodings.join(",").trim() != "chunked" {
                return Err(Failure::Malformed(format!(
                    "transfer encoding {encodings:?}"
                )));
            }
            return self.chunked_body();
        }
        if let Some(length) = lengths.first() {
            if lengths.len() > 1 {
                return Err(Failure::Malformed("two Content-Length headers".into()));
            }
            let length: usize = length
                .parse()
                .map_err(|_| Failure::Malformed(format!("Content-Length {length:?}")))?;
            if length > MAX_RESPONSE_BYTES {
                return Err(Failure::TooLarge);
            }
            while self.buf.len() - self.pos < length {
                if !self.fill()? {
                    return Ok(None);
                }
            }
            let body = self.buf[self.pos..self.pos + length].to_vec();
            self.pos += length;
            return Ok(Some(body));
        }
        // Delimited by the end of the connection.
        while self.fill()? {}
        if self.end == Some(End::Reset) {
            return Ok(None);
        }
        let body = self.buf[self.pos..].to_vec();
        self.pos = self.buf.len();
        Ok(Some(body))
    }

    fn chunked_body(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        let mut body = Vec::new();
        loop {
            let (n, size) = loop {
                match httparse::parse_chunk_size(&self.buf[self.pos..]) {
                    Ok(httparse::Status::Complete(parsed)) => break parsed,
                    Ok(httparse::Status::Partial) => {
                        if !self.fill()? {
                            return Ok(None);
                        }
                    }
                    Err(_) => return Err(Failure::Malformed("a bad chunk size".into())),
                }
            };
            self.pos += n;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_RESPONSE_BYTES)
                .ok_or(Failure::TooLarge)?;
            if size == 0 {
                // hyper writes no trailers here: an empty line ends the body.
                while self.buf.len() - self.pos < 2 {
                    if !self.fill()? {
                        return Ok(None);
                    }
                }
                if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
                    return Err(Failure::Malformed("trailers after the last chunk".into()));
                }
                self.pos += 2;
                return Ok(Some(body));
            }
            while self.buf.len() - self.pos < size + 2 {
                if !self.fill()? {
                    return Ok(None);
                }
            }
            body.extend_from_slice(&self.buf[self.pos..self.pos + size]);
            if &self.buf[self.pos + size..self.pos + size + 2] != b"\r\n" {
                return Err(Failure::Malformed("a chunk not followed by CRLF".into()));
            }
            self.pos += size + 2;
        }
    }
}

/// Builds a framed input for `decode` (the seed corpus and tests write
/// requests this way): `control` as in `decode`, with its low bits set so
/// the input is framed.
pub fn encode_gateway_input(
    control: u8,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> Vec<u8> {
    let control = if control & 3 == 0 {
        control | 1
    } else {
        control
    };
    let mut out = vec![control];
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(target.as_bytes());
    out.push(b'\n');
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}
