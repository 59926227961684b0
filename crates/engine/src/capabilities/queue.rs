//! `nimbus:function/queue`: send to a queue the function is granted
//! (`queue:NAME:send`).

use crate::state::InvocationState;
use nimbus_store::SendMessage;
use nimbus_trace::SpanKind;
use nimbus_wit::queue::Host;
use nimbus_wit::types::Error;

impl Host for InvocationState {
    async fn send(
        &mut self,
        queue: String,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let caps = &self.capabilities;
        if !caps.grants.queue_send.contains(&queue) {
            return Ok(Err(caps.deny(format!("queue:{queue}:send"))));
        }
        let mut span = caps.span(format!("send {queue}"), SpanKind::Producer);
        span.set("messaging.destination.name", queue.as_str());
        let message = SendMessage {
            body,
            ..SendMessage::default()
        };
        Ok(caps.send_traced(&queue, message, span).await)
    }
}
