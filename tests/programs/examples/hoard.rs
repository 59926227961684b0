//! Makes the host hold memory the guest's `memory_mb` does not count.
//! `?bytes=N` builds one header collection with a single value of N bytes
//! and reports whether the host took it; `?count=N&bytes=M` keeps N such
//! collections alive at once; `?bodies=N` opens N outgoing response bodies
//! and fills each as far as the host lets it without anyone reading;
//! `?responses=N&url=URL` sends N GETs to URL at once and keeps every
//! response it gets with its body unread, then drops them all and sends one
//! more. The host must stop each hoard before its memory grows past the
//! bound.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

struct Program;
wasip2::http::proxy::export!(Program);

fn collection(bytes: usize, tag: usize) -> Result<Fields, String> {
    let value = vec![b'a' + (tag % 26) as u8; bytes];
    Fields::from_list(&[("x-hoard".to_owned(), value)]).map_err(|e| format!("{e:?}"))
}

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let param = |name| guest::query_param(&request, name).and_then(|v| v.parse().ok());
        if let Some(responses) = param("responses") {
            let url = guest::query_param(&request, "url").unwrap_or_default();
            let body = hold_responses(responses, &url);
            guest::respond(out, 200, &[], body.as_bytes());
            return;
        }
        if let Some(bodies) = param("bodies") {
            let filled = fill_bodies(bodies);
            let body = format!("filled {filled} bodies\n");
            guest::respond(out, 200, &[], body.as_bytes());
            return;
        }
        let bytes: usize = param("bytes").unwrap_or(1024);
        let Some(count) = param("count") else {
            let body = match collection(bytes, 0) {
                Ok(_) => "accepted\n".to_owned(),
                Err(e) => format!("refused: {e}\n"),
            };
            guest::respond(out, 200, &[], body.as_bytes());
            return;
        };
        let mut kept = Vec::new();
        for i in 0..count {
            match collection(bytes, i) {
                Ok(fields) => kept.push(fields),
                Err(e) => {
                    let body = format!("refused after {}: {e}\n", kept.len());
                    guest::respond(out, 200, &[], body.as_bytes());
                    return;
                }
            }
        }
        let body = format!("kept {}\n", kept.len());
        guest::respond(out, 200, &[], body.as_bytes());
    }
}

/// Opens `count` outgoing response bodies and writes into each until the
/// host stops taking bytes (nobody reads them); keeps them all open.
fn fill_bodies(count: usize) -> usize {
    let mut kept = Vec::new();
    let mut chunk = Vec::new();
    for _ in 0..count {
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("body once");
        let stream = body.write().expect("stream once");
        loop {
            let room = stream.check_write().expect("stream open") as usize;
            if room == 0 {
                break;
            }
            chunk.resize(room, b'x');
            stream.write(&chunk).expect("write within the budget");
        }
        kept.push((stream, body, response));
    }
    let filled = kept.len();
    // Left to the host, which drops them with the store: dropping a
    // response before its body and stream would trap.
    std::mem::forget(kept);
    filled
}

/// A GET of `http://AUTHORITY/PATH` sent through the outgoing handler.
fn get(url: &str) -> Result<outgoing_handler::FutureIncomingResponse, String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| "scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .map_err(|()| "path")?;
    outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))
}

/// Sends `count` GETs to `url` at once, keeps each response that comes with
/// its body unread, and reports `held N` and each error with its count;
/// then drops them all and reports whether one more GET gets a response.
fn hold_responses(count: usize, url: &str) -> String {
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    let pending: Vec<_> = (0..count)
        .filter_map(|_| match get(url) {
            Ok(future) => Some(future),
            Err(e) => {
                *errors.entry(e).or_default() += 1;
                None
            }
        })
        .collect();
    let mut held = Vec::new();
    for future in pending {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) => {
                let body = response.consume().expect("body once");
                let stream = body.stream().expect("stream once");
                held.push((stream, body, response));
            }
            Some(Ok(Err(e))) => *errors.entry(format!("{e:?}")).or_default() += 1,
            other => *errors.entry(format!("{other:?}")).or_default() += 1,
        }
    }
    let mut report = format!("held {}\n", held.len());
    for (error, count) in &errors {
        report.push_str(&format!("{count} x {error}\n"));
    }
    // The stream before its body, the body before its response.
    for (stream, body, response) in held {
        drop(stream);
        drop(body);
        drop(response);
    }
    let again = get(url).and_then(|future| {
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(_))) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    report.push_str(&match again {
        Ok(()) => "after dropping them: a response\n".to_owned(),
        Err(e) => format!("after dropping them: {e}\n"),
    });
    report
}
