//! Prints `lines` numbered lines to stdout and one line to stderr.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let lines: u32 = guest::query_param(&request, "lines")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        for i in 0..lines {
            println!("stdout line {i} of {lines}");
        }
        eprintln!("stderr says hi");
        guest::respond(out, 200, &[], b"printed\n");
    }
}
