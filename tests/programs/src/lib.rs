//! Helpers shared by the guest test programs: reading a request, writing a
//! response, and a tiny JSON encoder so the guests stay dependency-free.

use wasip2::io::streams::OutputStream;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Sends a complete response with the given status, headers and body.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(*name, value.as_bytes())
            .expect("valid header");
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("body stream once");
    write_all(&stream, body);
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish body");
}

/// Writes and flushes `bytes` to an outgoing body's stream.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) {
    // `blocking-write-and-flush` takes at most 4096 bytes per call.
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write body");
    }
}

/// Reads the whole request body.
pub fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("consume body once");
    let stream = body.stream().expect("body stream once");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(e) => panic!("reading request body: {e:?}"),
        }
    }
    bytes
}

/// The value of `name` in the request's query string, if present.
pub fn query_param(request: &IncomingRequest, name: &str) -> Option<String> {
    let path = request.path_with_query()?;
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_owned())
    })
}

/// All request headers as (name, value) pairs, values decoded lossily.
pub fn headers(request: &IncomingRequest) -> Vec<(String, String)> {
    request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect()
}

/// Encodes `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Blocks the guest for `ms` milliseconds using the WASI monotonic clock.
pub fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}
