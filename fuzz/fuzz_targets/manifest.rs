//! libFuzzer entry for the `manifest` target: `nimbus.toml` text -> `App::parse`; see crates/fuzz/src/manifest.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nimbus_fuzz::manifest(data));
