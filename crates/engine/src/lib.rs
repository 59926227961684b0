//! The wasmtime wrapper: one `Engine` and `Linker` per process, one
//! pre-instantiated component per function, a fresh `Store` per invocation
//! with a memory cap and a wall-clock deadline.

mod cache;
mod http;
mod limits;
mod output;
mod runtime;
mod state;

pub use cache::{ArtifactCache, CacheOutcome};
pub use http::{HttpFunction, InvokeError, ResponseBody, full_body};
pub use limits::MemoryLimitExceeded;
pub use runtime::{EngineSettings, Runtime};
