//! Defaults and allowed ranges of every numeric manifest setting, in one place
//! so the docs, the validator and the runtime agree.

use std::ops::RangeInclusive;

/// A numeric setting: its key, default and allowed range.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub key: &'static str,
    pub default: u64,
    pub range: (u64, u64),
}

impl Limit {
    pub fn range(&self) -> RangeInclusive<u64> {
        self.range.0..=self.range.1
    }
}

/// Linear-memory cap per instance, in MiB.
pub const MEMORY_MB: Limit = Limit {
    key: "memory_mb",
    default: 128,
    range: (1, 4096),
};
/// Wall-clock deadline per invocation, in milliseconds (up to 15 minutes).
pub const TIMEOUT_MS: Limit = Limit {
    key: "timeout_ms",
    default: 30_000,
    range: (1, 900_000),
};
/// Instances of one function in flight at once.
pub const MAX_CONCURRENCY: Limit = Limit {
    key: "max_concurrency",
    default: 100,
    range: (1, 10_000),
};
/// Bytes of stdout plus stderr kept per invocation; the rest is dropped.
pub const MAX_LOG_BYTES: Limit = Limit {
    key: "max_log_bytes",
    default: 64 * 1024,
    range: (0, 16 * 1024 * 1024),
};
/// Largest request body an HTTP trigger accepts, in bytes (6 MiB, as Lambda).
pub const MAX_BODY_BYTES: Limit = Limit {
    key: "max_body_bytes",
    default: 6 * 1024 * 1024,
    range: (0, 100 * 1024 * 1024),
};
/// Cap on each wait of an outbound HTTP request: connecting (DNS, TCP, TLS),
/// the response head, and each gap between body chunks. A guest's own
/// request options may shorten these waits, never lengthen them.
pub const OUTBOUND_TIMEOUT_MS: Limit = Limit {
    key: "outbound_timeout_ms",
    default: 10_000,
    range: (1, 900_000),
};
/// Largest response body an outbound HTTP request may return (16 MiB by
/// default); a larger one is an error to the guest, never a truncated body.
pub const MAX_OUTBOUND_RESPONSE_BYTES: Limit = Limit {
    key: "max_outbound_response_bytes",
    default: 16 * 1024 * 1024,
    range: (0, 1024 * 1024 * 1024),
};

/// How long a received message stays hidden from other receivers (up to 12 h).
pub const VISIBILITY_TIMEOUT_MS: Limit = Limit {
    key: "visibility_timeout_ms",
    default: 30_000,
    range: (0, 43_200_000),
};
/// How long a message is kept after it was first sent (1 minute to 14 days; 4 days by default).
pub const RETENTION_MS: Limit = Limit {
    key: "retention_ms",
    default: 345_600_000,
    range: (60_000, 1_209_600_000),
};
/// Delay before a sent message becomes visible (up to 15 minutes).
pub const DELAY_MS: Limit = Limit {
    key: "delay_ms",
    default: 0,
    range: (0, 900_000),
};
/// Largest message body a queue accepts (up to 1 MiB; 256 KiB by default).
pub const MAX_MESSAGE_BYTES: Limit = Limit {
    key: "max_message_bytes",
    default: 262_144,
    range: (1, 1_048_576),
};
/// How long a deduplication id is remembered (up to 1 hour; 5 minutes by default).
pub const DEDUP_WINDOW_MS: Limit = Limit {
    key: "dedup_window_ms",
    default: 300_000,
    range: (0, 3_600_000),
};
/// Receives after which a message goes to the dead-letter queue.
pub const MAX_RECEIVE_COUNT: Limit = Limit {
    key: "max_receive_count",
    default: 0,
    range: (1, 1000),
};
/// Clock skew, in seconds, tolerated on a JWT's `exp` and `nbf`.
pub const JWT_LEEWAY_S: Limit = Limit {
    key: "leeway_s",
    default: 30,
    range: (0, 300),
};
/// Seconds fetched JWKS keys are used before they are fetched again.
pub const JWKS_REFRESH_S: Limit = Limit {
    key: "jwks_refresh_s",
    default: 300,
    range: (10, 86_400),
};
/// Largest object a bucket accepts, in bytes (64 MiB by default). Uploads
/// are held in memory while they are checked and written, so the bound is
/// firm.
pub const MAX_OBJECT_BYTES: Limit = Limit {
    key: "max_object_bytes",
    default: 64 * 1024 * 1024,
    range: (1, 256 * 1024 * 1024),
};
