//! `nimbus:function/queue`: send to a queue the function is granted
//! (`queue:NAME:send`).

use crate::state::InvocationState;
use nimbus_store::{SendMessage, StoreError};
use nimbus_trace::SpanKind;
use nimbus_wit::queue::Host;
use nimbus_wit::types::Error;
use std::collections::BTreeMap;

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
        let store = &caps.services.queues;
        // The message carries the send's span, so its consumer's invocation
        // continues this trace.
        let mut span = caps.span(format!("send {queue}"), SpanKind::Producer);
        span.set("messaging.destination.name", queue.as_str());
        let message = SendMessage {
            body,
            attributes: BTreeMap::from([("traceparent".to_owned(), span.context.to_traceparent())]),
            ..SendMessage::default()
        };
        let sent = store.send(&queue, vec![message]).await;
        if let Err(e) = &sent {
            span.fail(e.to_string());
        }
        span.end();
        Ok(match sent {
            Ok(mut receipts) => {
                caps.services.queue_signals.notify(&queue);
                Ok(receipts.remove(0).message_id)
            }
            Err(StoreError::QueueNotFound(q)) => Err(Error::NotFound(format!("queue `{q}`"))),
            Err(e @ StoreError::MessageTooLarge { .. }) => Err(Error::Invalid(e.to_string())),
            Err(e) => {
                tracing::error!(function = %caps.function, invocation_id = %caps.invocation_id, "queue send failed: {e}");
                Err(Error::Unavailable(e.to_string()))
            }
        })
    }
}
