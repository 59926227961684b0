//! Counts the requests its instance has handled in a global and answers the
//! count: `1` every time if each request gets a fresh instance.

use nimbus_guest_programs as guest;
use std::sync::atomic::{AtomicU64, Ordering};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

static HANDLED: AtomicU64 = AtomicU64::new(0);

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let count = HANDLED.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{count}\n");
        guest::respond(out, 200, &[("content-type", "text/plain")], body.as_bytes());
    }
}
