//! Per-instance resource limits enforced through the store's limiter.

use wasmtime::ResourceLimiter;

/// Table elements one table may grow to; far beyond what real guests use.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Resource handles one invocation may hold at once: header collections,
/// requests, responses, bodies, streams, pollables, futures. wasmtime's
/// default (1,000,000) would let a guest pin host memory far past its
/// `memory_mb`, as each handle owns host-side data; a request handler needs
/// tens of handles, and each concurrent outbound request about ten more.
/// Past the cap, the host call that would create one more traps.
pub const MAX_RESOURCE_HANDLES: usize = 1024;

/// Largest wasi:http header collection (`fields`) a guest may build, in
/// wasmtime-wasi-http's measure (the in-memory size of the map, somewhat
/// over the wire size): room for any request head the gateway accepts
/// (`--max-header-bytes`, 64 KiB by default) to be copied, while
/// [`MAX_RESOURCE_HANDLES`] collections stay within
/// [`MAX_HOST_HEADER_BYTES`]. Building a larger one traps (wasmtime-wasi-http
/// treats it as a host limit, not a `header-error`).
pub const MAX_FIELD_BYTES: usize = 96 * 1024;

/// What header collections can pin on the host per invocation at most.
pub const MAX_HOST_HEADER_BYTES: usize = MAX_RESOURCE_HANDLES * MAX_FIELD_BYTES;

/// Largest single write to an outgoing body (a response or an outbound
/// request's). A body buffers at most two writes its reader has not taken,
/// so an unread body pins at most 128 KiB; every body takes three handles
/// (the message, the body, its stream), so bodies pin at most
/// [`MAX_HOST_BODY_BYTES`] per invocation.
pub const MAX_BODY_CHUNK_BYTES: usize = 64 * 1024;

/// What unread outgoing bodies can pin on the host per invocation at most.
pub const MAX_HOST_BODY_BYTES: usize = MAX_RESOURCE_HANDLES / 3 * 2 * MAX_BODY_CHUNK_BYTES;

/// Outbound connections one invocation may hold open at once (requests in
/// flight and responses whose bodies are not finished or dropped); one more
/// request fails at once with `connection-limit-reached`. Each holds less
/// than twice [`MAX_OUTBOUND_READ_BUFFER_BYTES`] of what the server sent
/// ahead of the guest's reads, so together at most [`MAX_HOST_OUTBOUND_BYTES`].
pub const MAX_OUTBOUND_CONNECTIONS: usize = 64;

/// Where hyper's read buffer for one outbound connection stops growing
/// (its default, about 400 KiB, would also admit a response head that
/// large). One read may add as much again before hyper checks, so a
/// connection buffers less than twice this, and a response head of twice
/// this fails the request. A body is read only as the guest asks for it,
/// and the chunks handed over are split off that same buffer.
pub const MAX_OUTBOUND_READ_BUFFER_BYTES: usize = 64 * 1024;

/// What outbound connections can make the host hold per invocation at most.
pub const MAX_HOST_OUTBOUND_BYTES: usize =
    MAX_OUTBOUND_CONNECTIONS * 2 * MAX_OUTBOUND_READ_BUFFER_BYTES;

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
