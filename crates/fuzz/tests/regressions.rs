//! Inputs the fuzz targets once failed on, each a named case; the same bytes
//! are kept in `fuzz/corpus/<target>/` so the smoke run replays them too.

use nimbus_fuzz::{ApiHarness, encode_input};

/// `ENDPOINTS` indices in `crates/fuzz/src/api.rs`.
const RECEIVE: u8 = 2;
const DELETE_MESSAGE: u8 = 12;

#[test]
fn a_path_segment_that_is_not_utf8_is_a_json_400() {
    let harness = ApiHarness::new();
    harness.run(&encode_input(DELETE_MESSAGE, 0, b"\n\xf7190a0b0", b""));
}

#[test]
fn the_largest_visibility_timeout_is_a_400_and_the_store_stays_up() {
    let harness = ApiHarness::new();
    let send = encode_input(0, 0, b"", br#"{"body": "x"}"#);
    harness.run(&send);
    harness.run(&encode_input(
        RECEIVE,
        0,
        b"",
        br#"{"visibility_timeout_ms": 18446744073709551615}"#,
    ));
    harness.run(&send);
}
