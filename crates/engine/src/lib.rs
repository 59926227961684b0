//! The wasmtime wrapper: one `Engine` and `Linker` per process, one
//! pre-instantiated component per function, a fresh `Store` per invocation
//! with a memory cap and a wall-clock deadline.

mod cache;
mod capabilities;
mod egress;
mod event;
mod history;
mod http;
mod invocation;
mod kind;
mod limits;
mod output;
mod probe;
mod runtime;
mod state;
mod time;

pub use cache::{ArtifactCache, CacheOutcome};
pub use capabilities::{
    FunctionDirectory, MAX_CALL_DEPTH, MAX_QUERY_LIMIT, Services, async_queue_name, item_key,
};
pub use event::{Event, EventFunction};
pub use history::{
    History, LIVE_LINES, LiveLine, MAX_HISTORY_RECORDS, MAX_PENDING_RECORDS, MAX_RECORD_LOG_BYTES,
    Trigger, TriggerKind, trace_id,
};
pub use http::{HttpFunction, ResponseBody, full_body};
pub use invocation::InvokeError;
pub use kind::{FunctionKind, component_kind};
pub use limits::{
    MAX_BODY_CHUNK_BYTES, MAX_FIELD_BYTES, MAX_HOST_BODY_BYTES, MAX_HOST_HEADER_BYTES,
    MAX_HOST_OUTBOUND_BYTES, MAX_OUTBOUND_CONNECTIONS, MAX_OUTBOUND_READ_BUFFER_BYTES,
    MAX_RESOURCE_HANDLES, MemoryLimitExceeded,
};
pub use probe::BareFunction;
pub use runtime::{
    DEFAULT_MAX_WASM_STACK_KB, EngineSettings, LoadedFunction, MAX_POOLED_INSTANCES, Runtime,
};
pub use time::{rfc3339, rfc3339_now};
