//! Panics (a trap) with a message that must reach the log and never the client.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        panic!("internal detail: the database password is hunter2");
    }
}
