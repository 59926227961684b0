//! Fetches the URL given as the request body through wasi:http's outgoing
//! handler. Replies 200 with the upstream body and its status in
//! `x-upstream-status`, or 502 with `error: ` and the error the host
//! reported. `?first_byte_timeout_ms=N` sets that request option.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingRequest, RequestOptions, ResponseOutparam,
    Scheme, http_error_code,
};
use wasip2::io::streams::StreamError;

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let first_byte_timeout_ms = guest::query_param(&request, "first_byte_timeout_ms")
            .and_then(|v| v.parse::<u64>().ok());
        let url = String::from_utf8_lossy(&guest::read_body(&request))
            .trim()
            .to_owned();
        match fetch(&url, first_byte_timeout_ms) {
            Ok((status, body)) => guest::respond(
                out,
                200,
                &[("x-upstream-status", &status.to_string())],
                &body,
            ),
            Err(e) => guest::respond(out, 502, &[], format!("error: {e}").as_bytes()),
        }
    }
}

fn fetch(url: &str, first_byte_timeout_ms: Option<u64>) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("the URL has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme".to_owned())?;
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority `{authority}`"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| format!("invalid path `{path}`"))?;
    let options = first_byte_timeout_ms.map(|ms| {
        let options = RequestOptions::new();
        options
            .set_first_byte_timeout(Some(ms * 1_000_000))
            .expect("first-byte timeout is supported");
        options
    });

    let pending = outgoing_handler::handle(request, options).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) => return Err("the response was already taken".to_owned()),
        None => return Err("the response is not ready".to_owned()),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| "the body was already taken".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "the body stream was already taken".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match http_error_code(&e) {
                    Some(code) => format!("{code:?}"),
                    None => e.to_debug_string(),
                });
            }
        }
    }
    drop(stream);
    let trailers = IncomingBody::finish(body);
    trailers.subscribe().block();
    if let Some(Ok(Err(e))) = trailers.get() {
        return Err(format!("{e:?}"));
    }
    Ok((status, bytes))
}
