//! Recurses `?depth=N` calls deep, each frame holding its locals on the
//! wasm stack, and answers when it is back: a stack too small traps.

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

#[inline(never)]
fn descend(depth: u64, seed: u64) -> u64 {
    if depth == 0 {
        return seed;
    }
    // Scalars live across the call stay in wasm locals, which the compiled
    // frame keeps on the wasm stack; nothing goes to linear memory, whose
    // own (shadow) stack would otherwise run out first.
    let (a, b, c, d) = (seed.wrapping_mul(3), seed ^ 0x55, seed.rotate_left(7), seed >> 3);
    let (e, f, g, h) = (a ^ b, c.wrapping_add(d), a.rotate_left(13), b.wrapping_mul(c | 1));
    let below = descend(depth - 1, seed ^ e);
    // Rotating what came back keeps this from becoming a loop (a plain
    // accumulator would let the compiler eliminate the recursion).
    below.rotate_left((a % 63) as u32 + 1)
        ^ b.wrapping_add(c)
        ^ d.wrapping_sub(e)
        ^ f.wrapping_mul(g | 1)
        ^ h
}

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let depth = guest::query_param(&request, "depth")
            .and_then(|d| d.parse().ok())
            .unwrap_or(1);
        let reached = descend(depth, 7);
        let body = format!("recursed {depth} frames ({reached})\n");
        guest::respond(out, 200, &[("content-type", "text/plain")], body.as_bytes());
    }
}
