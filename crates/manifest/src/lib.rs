//! `nimbus.toml`: parsed, validated and resolved into an [`App`].
//!
//! The manifest as written (`raw`) is never used past this crate: callers get
//! an [`App`] whose values are checked and defaulted. Every problem is a
//! [`Diagnostic`] naming the line and column and saying how to fix it.

mod auth;
pub mod bucket;
pub mod delivery;
mod diagnostic;
pub mod limits;
pub mod outbound;
mod raw;
mod resolve;
pub mod route;
pub mod schedule;
pub mod secret;
pub mod table;
pub mod time;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use auth::{JwtAlgorithm, JwtConfig, JwtKeys, RouteAuth};
pub use delivery::{Backoff, Delivery, Destination, RetryPolicy};
pub use diagnostic::{Diagnostic, Location, ManifestError};
pub use outbound::{HostPattern, Outbound, Reach};
pub use route::{RouteMatch, RoutePattern, Segment};
pub use schedule::{CatchUp, ScheduleExpression, ScheduleTrigger};
pub use table::{StartingPosition, StreamTrigger, Table};

/// The rule `[app] name` follows, as the manifest's error states it.
pub const APP_NAME_RULE: &str =
    "1 to 63 lowercase letters, digits and `-`, starting with a letter or digit";

/// Whether `name` may name an app (`[app] name`; `nimbus new` checks it too).
pub fn valid_app_name(name: &str) -> bool {
    resolve::valid_name(name, 63, false)
}

/// Whether `name` may name a queue (`[queue.NAME]`): 1 to 64 lowercase
/// letters, digits, `-` and `_`, starting with a letter.
pub fn is_queue_name(name: &str) -> bool {
    resolve::valid_name(name, 64, true)
}

/// A validated application: what `nimbus up` runs.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// The manifest file this app came from.
    pub manifest_path: PathBuf,
    /// Directory of the manifest; relative paths and build commands start here.
    pub base_dir: PathBuf,
    pub functions: BTreeMap<String, Function>,
    pub queues: BTreeMap<String, Queue>,
    pub buckets: BTreeMap<String, Bucket>,
    pub http_triggers: Vec<HttpTrigger>,
    pub queue_triggers: Vec<QueueTrigger>,
    /// `[table.NAME]`: tables of JSON documents, some with change streams.
    pub tables: BTreeMap<String, Table>,
    pub stream_triggers: Vec<StreamTrigger>,
    /// `[[trigger.schedule]]`, in manifest order.
    pub schedule_triggers: Vec<ScheduleTrigger>,
    pub object_triggers: Vec<ObjectTrigger>,
    /// `[auth.jwt]`: how `auth = "jwt"` routes verify bearer tokens.
    pub jwt: Option<JwtConfig>,
}

/// A durable queue (`[queue.NAME]`), with SQS semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub visibility_timeout_ms: u64,
    pub retention_ms: u64,
    pub delay_ms: u64,
    pub max_message_bytes: u64,
    pub dedup_window_ms: u64,
    /// With `dead_letter_queue`: receives before a message is dead-lettered.
    pub max_receive_count: Option<u32>,
    pub dead_letter_queue: Option<String>,
}

/// A function: one WebAssembly component and the limits it runs under.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    /// Absolute path of the component file.
    pub component: PathBuf,
    /// Where `component = ...` is written, for "file not found" errors.
    pub component_location: Location,
    /// Shell command that produces the component, run in `App::base_dir`.
    pub build: Option<String>,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub max_log_bytes: u64,
    pub env: BTreeMap<String, String>,
    /// What the function may use; nothing else is reachable.
    pub grants: Vec<Grant>,
    /// Where the function may send HTTP requests; nowhere by default.
    pub outbound: Outbound,
    /// Retries and destinations of asynchronous invocations.
    pub async_invoke: RetryPolicy,
}

/// One permission from a function's `allow` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// `queue:NAME:send`
    QueueSend(String),
    /// `secret:NAME:read`; the secret need not be set yet (secrets are set
    /// at runtime), in which case reading it is `not-found`.
    SecretRead(String),
    /// `function:NAME:invoke` (an event function, checked when the app starts)
    FunctionInvoke(String),
    /// `table:NAME:read`: get, query and scan.
    TableRead(String),
    /// `table:NAME:write`: put and delete.
    TableWrite(String),
    /// `bucket:NAME:read` or `bucket:NAME/PREFIX:read`: get, head and list
    /// objects whose keys start with `prefix` (empty: the whole bucket).
    BucketRead { bucket: String, prefix: String },
    /// `bucket:NAME:write` or `bucket:NAME/PREFIX:write`: put and delete
    /// objects whose keys start with `prefix`.
    BucketWrite { bucket: String, prefix: String },
}

/// An object bucket (`[bucket.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub max_object_bytes: u64,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectEventKind {
    Created,
    Removed,
}

impl ObjectEventKind {
    /// The event's CloudEvents `type`.
    pub fn event_type(self) -> &'static str {
        match self {
            ObjectEventKind::Created => "nimbus.object.created",
            ObjectEventKind::Removed => "nimbus.object.removed",
        }
    }
}

/// `[[trigger.object]]`: `function` is told of `events` on keys of `bucket`
/// that start with `prefix` and end with `suffix`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectTrigger {
    /// Names it among its function's object triggers (`id`, else the
    /// bucket's name), so its queue stays its own when triggers move.
    pub id: String,
    pub bucket: String,
    pub function: String,
    pub events: Vec<ObjectEventKind>,
    pub prefix: String,
    pub suffix: String,
    /// The internal queue its events wait on (`_object.FUNCTION.ID`).
    pub queue: String,
    pub delivery: Delivery,
    pub policy: RetryPolicy,
}

impl ObjectTrigger {
    /// Whether an event of `kind` on `key` is this trigger's.
    pub fn matches(&self, kind: ObjectEventKind, key: &str) -> bool {
        self.events.contains(&kind) && key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

/// `[[trigger.queue]]`: `function` consumes `queue` in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueTrigger {
    pub queue: String,
    pub function: String,
    pub delivery: Delivery,
}

/// An HTTP route on the public gateway.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: RoutePattern,
    /// Allowed methods, upper case; `None` allows any method.
    pub methods: Option<Vec<String>>,
    pub function: String,
    pub max_body_bytes: u64,
    /// Who may call the route.
    pub auth: RouteAuth,
}

impl App {
    /// Reads, parses and validates a manifest. Component files are not
    /// checked here (they may not be built yet): see [`App::check_components`].
    pub fn load(path: &Path) -> Result<App, ManifestError> {
        let source = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &source)
    }

    /// Parses and validates manifest text as if read from `path`.
    pub fn parse(path: &Path, source: &str) -> Result<App, ManifestError> {
        resolve::resolve(path, source)
    }

    /// Checks that every function's component file exists.
    pub fn check_components(&self) -> Result<(), ManifestError> {
        let source = std::fs::read_to_string(&self.manifest_path).unwrap_or_default();
        let mut diagnostics = Vec::new();
        for function in self.functions.values() {
            if function.component.is_file() {
                continue;
            }
            let help = if function.build.is_some() {
                "run `nimbus build` (or `nimbus up --build`) to build it, or fix the path"
                    .to_owned()
            } else {
                "build the component or fix the path; paths are relative to the manifest's directory"
                    .to_owned()
            };
            let loc = function.component_location;
            diagnostics.push(Diagnostic {
                location: loc,
                message: format!(
                    "component file {} of function `{}` does not exist",
                    function.component.display(),
                    function.name
                ),
                help,
                source_line: source
                    .lines()
                    .nth(loc.line - 1)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid {
                path: self.manifest_path.clone(),
                diagnostics,
            })
        }
    }
}
