//! Makes the host hold wasi:http header collections: `?bytes=N` builds one
//! collection with a single header value of N bytes and reports whether the
//! host took it; `?count=N&bytes=M` keeps N collections of M bytes each
//! alive at once (each under the size limit), which the host must refuse
//! before its memory grows past the invocation's bound.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

fn collection(bytes: usize, tag: usize) -> Result<Fields, String> {
    let value = vec![b'a' + (tag % 26) as u8; bytes];
    Fields::from_list(&[("x-hoard".to_owned(), value)]).map_err(|e| format!("{e:?}"))
}

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let param = |name| guest::query_param(&request, name).and_then(|v| v.parse().ok());
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
