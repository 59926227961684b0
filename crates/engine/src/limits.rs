//! Per-instance resource limits enforced through the store's limiter.

use wasmtime::ResourceLimiter;

/// Table elements one table may grow to; far beyond what real guests use.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Raised when a guest tries to grow a linear memory past `memory_mb`. The
/// guest traps, and the log says which limit it hit.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub limit_mb: u32,
    pub desired_bytes: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memory limit exceeded: the function tried to grow a linear memory to {} bytes, over its memory_mb = {}",
            self.desired_bytes, self.limit_mb
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Caps each linear memory of an instance at `memory_mb`.
pub(crate) struct MemoryCap {
    limit_mb: u32,
}

impl MemoryCap {
    pub(crate) fn new(limit_mb: u32) -> Self {
        MemoryCap { limit_mb }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > (self.limit_mb as usize) << 20 {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit_mb: self.limit_mb,
                desired_bytes: desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
