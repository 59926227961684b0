//! Paths of the guest components in `tests/programs`, built by this crate's
//! build script for wasm32-wasip2. Each constant names one component file.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));
