//! `nimbus:function/queue`: send to a queue the function is granted
//! (`queue:NAME:send`).

use crate::state::InvocationState;
use nimbus_store::{SendMessage, StoreError};
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
        let store = &caps.services.queues;
        let message = SendMessage {
            body,
            ..SendMessage::default()
        };
        Ok(match store.send(&queue, vec![message]).await {
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
