//! libFuzzer entry for the `api_request` target: one `/v1` request through the real router; see crates/fuzz/src/api.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nimbus_fuzz::api_request(data));
