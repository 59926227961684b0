//! libFuzzer entry for the `route` target: route patterns and paths -> `RoutePattern`; see crates/fuzz/src/route.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nimbus_fuzz::route(data));
