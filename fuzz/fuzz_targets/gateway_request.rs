//! libFuzzer entry for the `gateway_request` target: one raw HTTP/1.1 request over TCP to the public gateway and the echo component; see crates/fuzz/src/gateway.rs.
//! The component comes from `$NIMBUS_FUZZ_ECHO_COMPONENT`, by default the one `cargo test` builds
//! (tests/programs/target/wasm32-wasip2/release/examples/echo.wasm).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nimbus_fuzz::gateway_request(data));
