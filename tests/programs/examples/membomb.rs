//! Allocates and touches memory until the host's memory cap stops it.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            if hoard.len() > 1 << 16 {
                break;
            }
        }
        // Only reached if the host let 64 GiB through, which it must not.
        let body = format!("allocated {} MiB\n", hoard.len());
        guest::respond(out, 200, &[], body.as_bytes());
    }
}
