//! Lists the path parameters Nimbus passed in as x-nimbus-* headers, one
//! "key=value" line each, sorted, so tests can compare the text exactly.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let mut lines: Vec<String> = guest::headers(&request)
            .into_iter()
            .filter_map(|(name, value)| {
                if let Some(param) = name.strip_prefix("x-nimbus-param-") {
                    Some(format!("{param}={value}"))
                } else if name == "x-nimbus-path-rest" {
                    Some(format!("...={value}"))
                } else if name == "x-nimbus-route" {
                    Some(format!("route={value}"))
                } else {
                    None
                }
            })
            .collect();
        lines.sort();
        let body = lines.join("\n") + "\n";
        guest::respond(out, 200, &[("content-type", "text/plain")], body.as_bytes());
    }
}
