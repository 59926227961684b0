//! The `/v1` request target: fuzz bytes choose an endpoint, its path segments
//! and the body, and go through the real axum router in-process.
//!
//! Invariants checked on every input: no 5xx (the store is healthy and no
//! function can run, so nothing may legitimately fail on the server side); a
//! 4xx is JSON with a non-empty `error`; a message and an API key that existed
//! before fuzzing are still there, untouched, afterwards.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use nimbus_gateway::api::{ApiState, AppView, Functions};
use nimbus_gateway::auth::{ApiKeys, NewKey};
use nimbus_store::Store as _;
use nimbus_store::SystemClock;
use nimbus_store::queue::{QueueConfig, QueueStore, SendMessage};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt as _;

/// The queue holding the sentinel message. Inputs never name it in a path:
/// receiving, purging or redriving it are legitimate ways to remove a message.
const SENTINEL_QUEUE: &str = "sentinel";
const SENTINEL_BODY: &[u8] = b"accepted before fuzzing; must survive it";
/// The queues inputs may target: one with a dead-letter queue, the
/// dead-letter queue itself, and a name that does not exist.
const QUEUES: [&str; 3] = ["fuzz", "fuzz-dlq", "no-such-queue"];
/// An HTTP function (invoking it is a 400) and a name that does not exist.
const FUNCTIONS: [&str; 2] = ["web", "no-such-function"];
/// Inputs between purges of the scratch queues, so a run of hours does not
/// grow the database without bound.
const PURGE_EVERY: u64 = 4096;
/// Inputs between checks of the sentinel key: listing up to `MAX_KEYS` keys
/// on every input would dominate a long run, and revoking needs the key's
/// random id, which an input is not told.
const KEY_CHECK_EVERY: u64 = 1024;
/// Longest request URI the harness builds; longer ones never reach the
/// router (the HTTP server refuses oversized heads, and `http::Uri` holds
/// less than 64 KiB).
const MAX_URI_BYTES: usize = 16 * 1024;
/// Largest response body the harness reads; API answers are far smaller.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What a path segment of an endpoint stands for.
#[derive(Clone, Copy)]
enum Param {
    Queue,
    Function,
    /// A receipt handle, message id or key id: whatever the input says.
    Id,
}

/// Every `/v1` endpoint that decodes something from the request: a JSON
/// body, path segments or a query string.
const ENDPOINTS: &[(Method, &str, &[Param])] = &[
    (Method::POST, "/v1/queues/{}/messages", &[Param::Queue]),
    (
        Method::POST,
        "/v1/queues/{}/messages/batch",
        &[Param::Queue],
    ),
    (Method::POST, "/v1/queues/{}/receive", &[Param::Queue]),
    (
        Method::POST,
        "/v1/queues/{}/receipts/{}/visibility",
        &[Param::Queue, Param::Id],
    ),
    (Method::POST, "/v1/queues/{}/redrive", &[Param::Queue]),
    (Method::POST, "/v1/queues/{}/purge", &[Param::Queue]),
    (Method::POST, "/v1/keys", &[]),
    (Method::POST, "/v1/functions/{}/invoke", &[Param::Function]),
    (
        Method::POST,
        "/v1/functions/{}/invoke-async",
        &[Param::Function],
    ),
    // The body becomes the query string.
    (Method::GET, "/v1/queues/{}/messages?", &[Param::Queue]),
    (Method::GET, "/v1/queues/{}", &[Param::Queue]),
    (
        Method::DELETE,
        "/v1/queues/{}/receipts/{}",
        &[Param::Queue, Param::Id],
    ),
    (
        Method::DELETE,
        "/v1/queues/{}/messages/{}",
        &[Param::Queue, Param::Id],
    ),
    (Method::DELETE, "/v1/keys/{}", &[Param::Id]),
    // The body is the secret's value, not JSON.
    (Method::PUT, "/v1/secrets/{}", &[Param::Id]),
    (Method::DELETE, "/v1/secrets/{}", &[Param::Id]),
];

/// One `/v1` API over a scratch store, with a sentinel message and key.
pub struct ApiHarness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    store: Arc<SqliteStore>,
    keys: Arc<ApiKeys>,
    sentinel_message_id: String,
    sentinel_key_id: String,
    inputs: AtomicU64,
    // Last, so the store is closed before its directory goes.
    _dir: tempfile::TempDir,
}

/// The fuzz target: one request per input against a harness built once per
/// process (libFuzzer calls this millions of times).
pub fn api_request(data: &[u8]) {
    static HARNESS: OnceLock<ApiHarness> = OnceLock::new();
    HARNESS.get_or_init(ApiHarness::new).run(data);
}

impl Default for ApiHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiHarness {
    /// Opens a store in a fresh temporary directory, declares the queues,
    /// and records the sentinel message and key.
    pub fn new() -> Self {
        // Paused time: a long-polling receive (up to 20 s) completes as soon
        // as the runtime has nothing else to do, instead of in real time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("tokio runtime");
        let dir = tempfile::Builder::new()
            .prefix("nimbus-fuzz-")
            .tempdir()
            .expect("temporary directory");
        let options = SqliteOptions {
            path: dir.path().join("nimbus.db"),
            // Fuzzing needs throughput, not survival of power loss.
            durability: Durability::RelaxedMayLoseRecentWrites,
        };
        let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).expect("store"));
        let metrics = Arc::new(nimbus_metrics::Metrics::default());
        store.observe(metrics.clone());
        let (secret_key, _) =
            nimbus_vault::SecretKey::load_or_create(&dir.path().join("secrets.key"))
                .expect("secret key");
        let (keys, secrets, sentinel_message_id, sentinel_key_id) = runtime.block_on(async {
            let queue = |name: &str| QueueConfig {
                name: name.to_owned(),
                visibility_timeout_ms: 30_000,
                retention_ms: 86_400_000,
                delay_ms: 0,
                max_message_bytes: 1024,
                dedup_window_ms: 60_000,
                max_receive_count: None,
                dead_letter_queue: None,
            };
            let fuzz = QueueConfig {
                max_receive_count: Some(2),
                dead_letter_queue: Some("fuzz-dlq".to_owned()),
                ..queue("fuzz")
            };
            store
                .declare_queues(&[fuzz, queue("fuzz-dlq"), queue(SENTINEL_QUEUE)])
                .await
                .expect("declare queues");
            let sent = store
                .send(
                    SENTINEL_QUEUE,
                    vec![SendMessage {
                        body: SENTINEL_BODY.to_vec(),
                        ..SendMessage::default()
                    }],
                )
                .await
                .expect("send the sentinel message");
            let keys = Arc::new(ApiKeys::load(store.clone()).await.expect("load keys"));
            let (key, _) = keys
                .create(NewKey {
                    name: "sentinel".to_owned(),
                    ..NewKey::default()
                })
                .await
                .expect("create the sentinel key");
            let secrets = nimbus_vault::Vault::open(store.clone(), &secret_key)
                .await
                .expect("open the secret vault");
            (keys, Arc::new(secrets), sent[0].message_id.clone(), key.id)
        });
        let bucket_app = nimbus_manifest::App::parse(
            std::path::Path::new("nimbus.toml"),
            "[app]\nname = \"fuzz\"\n[bucket.files]\nmax_object_bytes = 4096\n",
        )
        .expect("the fuzz app parses");
        let buckets =
            nimbus_bucket::Buckets::open(&bucket_app, &dir.path().join("buckets"), store.clone())
                .expect("open the buckets");
        let access_keys = Arc::new(nimbus_access::AccessKeys::new(secrets.clone()));
        let state = ApiState {
            queues: store.clone(),
            waiters: store.signals().clone(),
            app: Arc::new(nimbus_gateway::Live::new(Arc::new(AppView {
                functions: Functions {
                    event: Default::default(),
                    http: [FUNCTIONS[0].to_owned()].into(),
                },
                queues: ["fuzz", "fuzz-dlq", SENTINEL_QUEUE]
                    .map(str::to_owned)
                    .into(),
                buckets: Arc::new(buckets),
                tables: Default::default(),
                schedules: Vec::new(),
            }))),
            keys: keys.clone(),
            secrets,
            history: {
                let _runtime = runtime.enter();
                nimbus_engine::History::start(store.clone(), metrics.clone(), "fuzz")
            },
            history_store: store.clone(),
            metrics,
            admin_token: nimbus_gateway::AdminToken::new("fuzz-admin-token-not-checked-here"),
            tables: store.clone(),
            test_clock: None,
            clock: Arc::new(SystemClock),
            schedule_store: store.clone(),
            store: store.clone(),
            deployer: None,
            access_keys,
        };
        ApiHarness {
            runtime,
            router: nimbus_gateway::api::router(state),
            store,
            keys,
            sentinel_message_id,
            sentinel_key_id,
            inputs: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// Sends the request `data` describes and checks the invariants.
    pub fn run(&self, data: &[u8]) {
        let Some(request) = decode(data) else {
            return;
        };
        self.send(request);
        let n = self.inputs.fetch_add(1, Ordering::Relaxed);
        self.check_sentinel_message();
        if n.is_multiple_of(KEY_CHECK_EVERY) {
            self.check_sentinel_key();
        }
        if n % PURGE_EVERY == PURGE_EVERY - 1 {
            self.runtime.block_on(async {
                for queue in &QUEUES[..2] {
                    self.store
                        .purge(queue)
                        .await
                        .expect("purge a scratch queue");
                }
            });
        }
    }

    /// Sends one request, checks what every answer must be (no 5xx, a 4xx
    /// is JSON with a non-empty `error`, any other body is JSON) and returns
    /// the status and body.
    pub fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let mut described = format!("{} {}", request.method(), request.uri());
        described.truncate(described.floor_char_boundary(300));
        let (status, content_type, body) = self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = axum::body::to_bytes(response.into_body(), MAX_RESPONSE_BYTES)
                .await
                .expect("response body");
            (status, content_type, body)
        });
        let shown = String::from_utf8_lossy(&body[..body.len().min(300)]);
        assert!(
            !status.is_server_error(),
            "{described} answered {status}: {shown}"
        );
        if status.is_client_error() {
            assert!(
                content_type.starts_with("application/json"),
                "{described} answered {status} with content-type `{content_type}`: {shown}"
            );
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
            assert!(
                error.is_some_and(|e| !e.trim().is_empty()),
                "{described} answered {status} without a JSON `error`: {shown}"
            );
        } else if !body.is_empty() {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
                "{described} answered {status} with a body that is not JSON: {shown}"
            );
        }
        (status, body)
    }

    /// Nothing accepted before fuzzing is lost: the sentinel message is still
    /// stored, never leased, with its body; the sentinel key is not revoked.
    pub fn check_sentinels(&self) {
        self.check_sentinel_key();
        self.check_sentinel_message();
    }

    fn check_sentinel_key(&self) {
        let key = self
            .keys
            .list()
            .into_iter()
            .find(|k| k.id == self.sentinel_key_id);
        assert!(
            key.is_some_and(|k| k.revoked_at_ms.is_none()),
            "the sentinel API key is gone or revoked (by this input or one of the {KEY_CHECK_EVERY} before it)"
        );
    }

    fn check_sentinel_message(&self) {
        self.runtime.block_on(async {
            let stored = self
                .store
                .peek(SENTINEL_QUEUE, 1000, None)
                .await
                .expect("peek the sentinel queue");
            let sentinel = stored
                .iter()
                .find(|m| m.message_id == self.sentinel_message_id);
            assert!(
                sentinel.is_some_and(|m| m.body == SENTINEL_BODY && m.receive_count == 0),
                "the sentinel message is gone, changed or leased: {sentinel:?}"
            );
            // A redrive may legitimately move messages here (`to` is in the
            // body); take them out so the queue stays small.
            for m in stored
                .iter()
                .filter(|m| m.message_id != self.sentinel_message_id)
            {
                self.store
                    .delete_by_id(SENTINEL_QUEUE, &m.message_id)
                    .await
                    .expect("delete a redriven message");
            }
        });
    }
}

/// Reads an input as `[endpoint][choice][segment length][segment][body]`:
/// the endpoint indexes `ENDPOINTS`; each bit pair of `choice` picks, per
/// path parameter, a fixed name or the segment. `None` for inputs that
/// would address the sentinel queue.
fn decode(data: &[u8]) -> Option<Request<Body>> {
    let (&endpoint, rest) = data.split_first()?;
    let (&choice, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (&segment_len, rest) = rest.split_first().unwrap_or((&0, &[]));
    let (segment, body) = rest.split_at(usize::from(segment_len).min(rest.len()));
    let (method, template, params) = &ENDPOINTS[usize::from(endpoint) % ENDPOINTS.len()];

    let mut uri = String::new();
    let mut pieces = template.split("{}");
    uri.push_str(pieces.next().unwrap_or_default());
    for (i, (param, piece)) in params.iter().zip(pieces).enumerate() {
        let pick = usize::from(choice >> (2 * i)) & 3;
        let value = match param {
            Param::Queue => QUEUES.get(pick).map(|q| q.as_bytes()),
            Param::Function => FUNCTIONS.get(pick).map(|f| f.as_bytes()),
            Param::Id => None,
        }
        .unwrap_or(segment);
        if matches!(param, Param::Queue) && percent_decoded(value) == SENTINEL_QUEUE.as_bytes() {
            return None;
        }
        encode_segment(&mut uri, value);
        uri.push_str(piece);
    }
    let body = if template.ends_with('?') {
        encode_query(&mut uri, body);
        Body::empty()
    } else {
        Body::from(body.to_vec())
    };
    if uri.len() > MAX_URI_BYTES {
        return None;
    }
    let request = Request::builder()
        .method(method.clone())
        .uri(&uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|e| panic!("the harness built a bad request URI ({e}): {uri:.200}"));
    Some(request)
}

/// Appends `bytes` as one path segment: everything but unreserved characters
/// and `%` is percent-encoded, so the input may still write its own (possibly
/// invalid) escapes but can never add a `/`.
fn encode_segment(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Appends `bytes` as a query string, keeping `&`, `=` and `%` so the input
/// controls the pairs and the escapes.
fn encode_query(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~%&=+".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `bytes` after percent-decoding, as the router will see the segment.
fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Builds an input for `decode`: the seed corpus and tests write requests
/// this way. `endpoint` and `choice` are as in `decode`.
pub fn encode_input(endpoint: u8, choice: u8, segment: &[u8], body: &[u8]) -> Vec<u8> {
    let segment = &segment[..segment.len().min(255)];
    let mut out = vec![endpoint, choice, segment.len() as u8];
    out.extend_from_slice(segment);
    out.extend_from_slice(body);
    out
}
