//! Holds its instance for a while: sleeps `before_ms` before the response
//! headers, then sends "start", sleeps `after_ms`, then sends "done".

use wasip2::http::types::{OutgoingBody, OutgoingResponse, Fields};

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let ms = |name| guest::query_param(&request, name).and_then(|v| v.parse().ok()).unwrap_or(0);
        let (before_ms, after_ms) = (ms("before_ms"), ms("after_ms"));
        guest::sleep_ms(before_ms);
        let response = OutgoingResponse::new(Fields::new());
        let body = response.body().expect("body once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("body stream once");
        guest::write_all(&stream, b"start\n");
        guest::sleep_ms(after_ms);
        guest::write_all(&stream, b"done\n");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}
