//! Answers with a greeting taken from the GREETING environment variable.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned());
        let path = request.path_with_query().unwrap_or_default();
        println!("hello handled {path}");
        let body = format!("{greeting}, world\n");
        guest::respond(out, 200, &[("content-type", "text/plain")], body.as_bytes());
    }
}
