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

/// Every limit, for documentation and tests.
pub const ALL: &[Limit] = &[
    MEMORY_MB,
    TIMEOUT_MS,
    MAX_CONCURRENCY,
    MAX_LOG_BYTES,
    MAX_BODY_BYTES,
];
