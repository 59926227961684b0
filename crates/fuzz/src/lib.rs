//! Fuzz target bodies: one function per target, each asserting the invariants
//! its code under test keeps, not only that it does not panic.
//!
//! The cargo-fuzz harness in `fuzz/` calls these from libFuzzer; the smoke
//! tests in `tests/` run them over the seed corpus and deterministic
//! mutations on the stable toolchain, so every CI run exercises them.

mod api;
mod gateway;
mod manifest;
pub mod mutate;
mod route;

pub use api::{ApiHarness, api_request, encode_input};
pub use gateway::{
    DEFAULT_ECHO_COMPONENT, ECHO_COMPONENT_ENV, GatewayHarness, encode_gateway_input,
    gateway_request,
};
pub use manifest::manifest;
pub use route::route;
