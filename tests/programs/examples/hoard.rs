//! Makes the host hold memory the guest's `memory_mb` does not count.
//! `?bytes=N` builds one header collection with a single value of N bytes
//! and reports whether the host took it; `?count=N&bytes=M` keeps N such
//! collections alive at once; `?bodies=N` opens N outgoing response bodies
//! and fills each as far as the host lets it without anyone reading. The
//! host must stop both hoards before its memory grows past the bound.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

fn collection(bytes: usize, tag: usize) -> Result<Fields, String> {
    let value = vec![b'a' + (tag % 26) as u8; bytes];
    Fields::from_list(&[("x-hoard".to_owned(), value)]).map_err(|e| format!("{e:?}"))
}

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let param = |name| guest::query_param(&request, name).and_then(|v| v.parse().ok());
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
