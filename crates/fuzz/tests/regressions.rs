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

fn request(method: &str, uri: &str, body: Vec<u8>) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .body(axum::body::Body::from(body))
        .unwrap()
}

#[test]
fn a_body_over_the_limit_is_a_json_413() {
    let harness = ApiHarness::new();
    let oversize = vec![b' '; nimbus_gateway::api::MAX_REQUEST_BYTES + 1];
    let (status, _) = harness.send(request("POST", "/v1/queues/fuzz/messages", oversize));
    assert_eq!(status, 413);
    harness.check_sentinels();
}

#[test]
fn a_method_a_route_does_not_have_is_a_json_405() {
    let harness = ApiHarness::new();
    let (status, _) = harness.send(request("PUT", "/v1/queues/fuzz/receive", Vec::new()));
    assert_eq!(status, 405);
}

#[test]
fn a_query_of_the_wrong_type_is_a_json_400() {
    let harness = ApiHarness::new();
    let (status, _) = harness.send(request(
        "GET",
        "/v1/queues/fuzz/messages?limit=-1",
        Vec::new(),
    ));
    assert_eq!(status, 400);
}
