//! `nimbus:function/functions`: invoke another event function of the app,
//! now or durably later, as the grants allow (`function:NAME:invoke`).

use crate::event::{Event, EventFunction};
use crate::invocation::InvokeError;
use crate::state::InvocationState;
use nimbus_store::SendMessage;
use nimbus_trace::SpanKind;
use nimbus_wit::functions::Host;
use nimbus_wit::types::Error;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, Weak};

/// Deepest chain of synchronous calls (A calls B calls C ...); a cycle
/// stops here rather than filling every instance slot.
pub const MAX_CALL_DEPTH: u32 = 8;

/// The internal queue holding `function`'s pending async events. Manifest
/// queue names start with a letter, so this never collides with one.
pub fn async_queue_name(function: &str) -> String {
    format!("_async.{function}")
}

/// The app's event functions, published once they are loaded (they are
/// loaded with the services this directory is part of). Weak, so functions
/// and the services they hold do not keep each other alive.
#[derive(Clone, Default)]
pub struct FunctionDirectory(Arc<OnceLock<HashMap<String, Weak<EventFunction>>>>);

impl FunctionDirectory {
    /// Makes `functions` reachable from guests; only the first call counts.
    pub fn publish(&self, functions: &HashMap<String, Arc<EventFunction>>) {
        let weak = functions
            .iter()
            .map(|(name, f)| (name.clone(), Arc::downgrade(f)))
            .collect();
        let _ = self.0.set(weak);
    }

    fn get(&self, name: &str) -> Option<Arc<EventFunction>> {
        self.0.get()?.get(name)?.upgrade()
    }
}

impl Host for InvocationState {
    async fn invoke(
        &mut self,
        function: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let caps = &self.capabilities;
        if !caps.grants.function_invoke.contains(&function) {
            return Ok(Err(caps.deny(format!("function:{function}:invoke"))));
        }
        if caps.depth >= MAX_CALL_DEPTH {
            return Ok(Err(Error::Invalid(format!(
                "call chains are limited to {MAX_CALL_DEPTH} synchronous invocations"
            ))));
        }
        let Some(target) = caps.services.functions.get(&function) else {
            return Ok(Err(Error::NotFound(format!("event function `{function}`"))));
        };
        let invocation_id = uuid::Uuid::now_v7().to_string();
        let mut span = caps.span(format!("call {function}"), SpanKind::Client);
        span.set("faas.invoked_name", function.as_str());
        let event = Event {
            id: invocation_id.clone(),
            source: format!("nimbus:function/{}", caps.function),
            type_: "nimbus.invoke".to_owned(),
            subject: None,
            time: crate::time::rfc3339_now(),
            datacontenttype: None,
            data,
            attempt: 1,
            traceparent: Some(span.context.to_traceparent()),
        };
        tracing::debug!(function = %caps.function, invocation_id = %caps.invocation_id, callee = %function, callee_invocation_id = %invocation_id, "invoking");
        let outcome = target
            .invoke_nested(
                vec![event],
                &invocation_id,
                caps.depth + 1,
                crate::history::Trigger::new(
                    crate::history::TriggerKind::Function,
                    caps.function.to_string(),
                ),
            )
            .await;
        match &outcome {
            Ok(failed) if !failed.is_empty() => span.fail("the event was reported failed"),
            Err(e) => span.fail(e.to_string()),
            Ok(_) => {}
        }
        span.end();
        Ok(match outcome {
            Ok(failed) if failed.is_empty() => Ok(()),
            Ok(_) => Err(Error::Failed(format!(
                "function `{function}` reported the event as failed (invocation {invocation_id})"
            ))),
            Err(InvokeError::Busy) => Err(Error::Unavailable(format!(
                "function `{function}` is at its concurrency limit"
            ))),
            Err(e @ InvokeError::DeadlineExceeded { .. }) => Err(Error::Failed(format!(
                "{e} (function `{function}`, invocation {invocation_id})"
            ))),
            Err(InvokeError::Failed(_)) => Err(Error::Failed(format!(
                "function `{function}` failed (invocation {invocation_id}; details in the log)"
            ))),
        })
    }

    async fn invoke_async(
        &mut self,
        function: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<String, Error>> {
        let caps = &self.capabilities;
        if !caps.grants.function_invoke.contains(&function) {
            return Ok(Err(caps.deny(format!("function:{function}:invoke"))));
        }
        if caps.services.functions.get(&function).is_none() {
            return Ok(Err(Error::NotFound(format!("event function `{function}`"))));
        }
        let queue = async_queue_name(&function);
        let mut span = caps.span(format!("call {function} async"), SpanKind::Producer);
        span.set("faas.invoked_name", function.as_str());
        let message = SendMessage {
            body: data,
            attributes: BTreeMap::from([(
                "source".to_owned(),
                format!("nimbus:function/{}", caps.function),
            )]),
            ..SendMessage::default()
        };
        Ok(caps.send_traced(&queue, message, span).await)
    }
}
