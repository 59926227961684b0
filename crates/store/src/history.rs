//! Invocation history: one record per invocation (who ran, why, how it
//! ended, what it printed), kept for a retention and under a hard cap.

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
}

/// One line a function wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `stdout`, `stderr` or `log` (the log import, with its level).
    pub stream: String,
    pub text: String,
}

/// Which records to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationFilter {
    pub function: Option<String>,
    /// Only records with one of these outcomes (any outcome when empty).
    pub outcomes: Vec<String>,
    /// Only records with an id below this one (the cursor for the next page).
    pub before: Option<String>,
    /// At most this many (the caller bounds it).
    pub limit: u32,
    /// Whether to load the captured lines (large) or leave `logs` empty.
    pub with_logs: bool,
}

#[async_trait::async_trait]
pub trait HistoryStore: Send + Sync {
    /// Stores records; an id already stored is replaced.
    async fn record_invocations(&self, records: Vec<InvocationRecord>) -> StoreResult<()>;

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
