//! Fetches the URL given as the request body through wasi:http's outgoing
//! handler. Replies 200 with the upstream body and its status in
//! `x-upstream-status`, or 502 with `error: ` and the error the host
//! reported. `?first_byte_timeout_ms=N` sets that request option;
//! `?send_bytes=N` makes it a POST with an N-byte body.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    ResponseOutparam, Scheme, http_error_code,
};
use wasip2::io::streams::StreamError;

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let first_byte_timeout_ms = guest::query_param(&request, "first_byte_timeout_ms")
            .and_then(|v| v.parse::<u64>().ok());
        let send_bytes =
            guest::query_param(&request, "send_bytes").and_then(|v| v.parse::<usize>().ok());
        let url = String::from_utf8_lossy(&guest::read_body(&request))
            .trim()
            .to_owned();
        match fetch(&url, first_byte_timeout_ms, send_bytes) {
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

fn fetch(
    url: &str,
    first_byte_timeout_ms: Option<u64>,
    send_bytes: Option<usize>,
) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("the URL has no scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    if let Some(n) = send_bytes {
        headers
            .append("content-length", n.to_string().as_bytes())
            .map_err(|e| format!("{e:?}"))?;
    }
    let request = OutgoingRequest::new(headers);
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

    let body = match send_bytes {
        Some(_) => {
            request
                .set_method(&Method::Post)
                .map_err(|()| "invalid method".to_owned())?;
            Some(request.body().map_err(|()| "no request body".to_owned())?)
        }
        None => None,
    };
    let pending = outgoing_handler::handle(request, options).map_err(|e| format!("{e:?}"))?;
    if let (Some(body), Some(n)) = (body, send_bytes) {
        {
            let stream = body.write().map_err(|()| "no body stream".to_owned())?;
            let chunk = vec![b'x'; 4096];
            let mut left = n;
            while left > 0 {
                let take = left.min(chunk.len());
                stream
                    .blocking_write_and_flush(&chunk[..take])
                    .map_err(|e| format!("writing the body: {e:?}"))?;
                left -= take;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    }
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
