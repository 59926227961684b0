//! `nimbus:function/log`: structured log lines, tagged with the function and
//! invocation. Needs no grant; bounded like stdout by `max_log_bytes`.

use crate::state::InvocationState;
use nimbus_wit::log::{Host, Level};

impl Host for InvocationState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let caps = &self.capabilities;
        if !self.output.charge(message.len() as u64 + 1) {
            return Ok(());
        }
        let (function, invocation_id) = (&caps.function, &caps.invocation_id);
        let stream = match level {
            Level::Debug => "log:debug",
            Level::Info => "log:info",
            Level::Warn => "log:warn",
            Level::Error => "log:error",
        };
        self.output.keep(stream, &message);
        match level {
            Level::Debug => {
                tracing::debug!(target: "nimbus::function", %function, %invocation_id, stream = %"log", "{message}")
            }
            Level::Info => {
                tracing::info!(target: "nimbus::function", %function, %invocation_id, stream = %"log", "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "nimbus::function", %function, %invocation_id, stream = %"log", "{message}")
            }
            Level::Error => {
                tracing::error!(target: "nimbus::function", %function, %invocation_id, stream = %"log", "{message}")
            }
        }
        Ok(())
    }
}
