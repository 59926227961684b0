//! Invocation history: one record per invocation (who ran, why, how it
//! ended, what it printed), kept for a retention and under a hard cap; and
//! usage, each function's metered use per hour, added up from the same
//! records as they are stored and kept after they expire. A record keeps
//! the invocation's spans, so its trace can be drawn without an OTLP
//! collector.

use crate::{StoreResult, Timestamp};

/// One invocation as recorded after it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRecord {
    /// The invocation id (a UUIDv7, so ids sort by start time).
    pub id: String,
    pub function: String,
    /// `http`, `queue`, `async`, `invoke` or `function`.
    pub trigger: String,
    /// The route pattern, queue name or calling function.
    pub source: String,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    /// `success`, `error`, `timeout` or `throttled`, as in the metrics.
    pub outcome: String,
    /// The error, one line, as logged.
    pub error: Option<String>,
    /// 1 on the first delivery (the highest attempt in a batch).
    pub attempt: u32,
    /// The trace id from a W3C `traceparent`, when the invocation had one.
    pub trace_id: Option<String>,
    /// Captured output, oldest first, up to the record's byte bound.
    pub logs: Vec<LogLine>,
    /// Whether output past the bound was left out.
    pub logs_truncated: bool,
    /// The node that ran it (`None` in records from before nodes were kept).
    pub node: Option<String>,
    /// The function's `memory_mb` when it ran.
    pub memory_mb: u32,
    /// Its run time in whole milliseconds, rounded up (0 when it never ran:
    /// throttled).
    pub billed_ms: u64,
    /// Bytes it sent out over outbound HTTP (request bodies).
    pub outbound_bytes: u64,
    /// Its spans (the invocation's own and its host calls'), in the order
    /// they ended, up to the engine's bound.
    pub spans: Vec<SpanRecord>,
    /// How many spans past the bound were left out.
    pub spans_dropped: u32,
}

impl InvocationRecord {
    /// Whether the invocation is metered: every one that ran (a throttled
    /// one never did).
    pub fn metered(&self) -> bool {
        self.outcome != "throttled"
    }

    /// The hour (ms since the epoch, a multiple of [`HOUR_MS`]) its usage
    /// counts in: the hour it started.
    pub fn usage_hour(&self) -> Timestamp {
        self.started_at - self.started_at % HOUR_MS
    }
}

/// The length of a usage period.
pub const HOUR_MS: u64 = 3_600_000;

/// One function's use in one hour, added up from its metered records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub function: String,
    /// The hour's start (ms since the epoch).
    pub hour: Timestamp,
    pub invocations: u64,
    /// Billed milliseconds (each invocation's rounded up, then added).
    pub billed_ms: u64,
    /// Megabyte-milliseconds: each invocation's `memory_mb` times its billed
    /// milliseconds, added (GB-seconds are this / 1024 / 1000, exactly).
    pub mb_ms: u64,
    pub outbound_bytes: u64,
}

/// Which usage to read: hours starting in `[from, to)`, of one function or
/// all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub from: Timestamp,
    pub to: Timestamp,
    pub function: Option<String>,
}

/// One line a function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `stdout`, `stderr` or `log` (the log import, with its level).
    pub stream: String,
    pub text: String,
}

/// One span of an invocation's trace, as kept with its record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpanRecord {
    /// 16 hex digits.
    pub span_id: String,
    /// The span it is a child of (16 hex digits), which may belong to
    /// another invocation or to no record at all (the gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub name: String,
    /// OTLP's span kind in lower case: `internal`, `server`, `client`,
    /// `producer` or `consumer`.
    pub kind: String,
    /// Microseconds since the Unix epoch.
    pub start_us: u64,
    pub duration_us: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a backend keeps a record's spans: one JSON text, `None` for a record
/// without spans (as every record written before spans were kept).
pub fn spans_to_json(spans: &[SpanRecord], dropped: u32) -> Option<String> {
    if spans.is_empty() && dropped == 0 {
        return None;
    }
    let stored = StoredSpans {
        spans: spans.to_vec(),
        dropped,
    };
    serde_json::to_string(&stored).ok()
}

/// The spans of a record kept by [`spans_to_json`]; nothing when the text
/// is missing or unreadable (a record's spans are never worth failing a
/// read for).
pub fn spans_from_json(text: Option<&str>) -> (Vec<SpanRecord>, u32) {
    text.and_then(|text| serde_json::from_str::<StoredSpans>(text).ok())
        .map(|stored| (stored.spans, stored.dropped))
        .unwrap_or_default()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSpans {
    spans: Vec<SpanRecord>,
    #[serde(default)]
    dropped: u32,
}

/// Which records to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationFilter {
    pub function: Option<String>,
    /// Only records with one of these outcomes (any outcome when empty).
    pub outcomes: Vec<String>,
    /// Only records with an id below this one (the cursor for the next page).
    pub before: Option<String>,
    /// Only records of this trace (32 hex digits).
    pub trace_id: Option<String>,
    /// At most this many (the caller bounds it).
    pub limit: u32,
    /// Whether to load the captured lines (large) or leave `logs` empty.
    pub with_logs: bool,
    /// Whether to load the spans or leave `spans` empty.
    pub with_spans: bool,
}

#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync {
    /// Stores records; an id already stored is replaced. The usage of each
    /// metered record not stored before is added to its function's hour in
    /// the same transaction, so usage is exactly the sum of the records
    /// (a record stored twice, as after a retried batch, counts once).
    async fn record_invocations(&self, records: Vec<InvocationRecord>) -> StoreResult<()>;

    /// Usage rows matching `filter`, by hour, then function.
    async fn usage(&self, filter: UsageFilter) -> StoreResult<Vec<UsageRow>>;

    /// Records matching `filter`, newest (highest id) first.
    async fn list_invocations(
        &self,
        filter: InvocationFilter,
    ) -> StoreResult<Vec<InvocationRecord>>;

    /// One record with its logs.
    async fn get_invocation(&self, id: &str) -> StoreResult<Option<InvocationRecord>>;

    /// Removes records that started more than `retention_ms` ago by the
    /// store's clock, then the oldest past `max_records`; returns how many.
    async fn expire_invocations(&self, retention_ms: u64, max_records: u64) -> StoreResult<u64>;
}
