//! `nimbus:function/secrets`: read a secret the function is granted
//! (`secret:NAME:read`), opened by the vault. Values go to the guest only:
//! never into a log line, an error or a trace.

use crate::state::InvocationState;
use nimbus_vault::{MAX_SECRET_NAME_LEN, VaultError};
use nimbus_wit::secrets::Host;
use nimbus_wit::types::Error;

impl Host for InvocationState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let caps = &self.capabilities;
        // No granted name is this long; refusing it here keeps a guest from
        // writing arbitrary amounts into the audit log.
        if name.len() > MAX_SECRET_NAME_LEN {
            return Ok(Err(Error::Invalid(format!(
                "a secret name is at most {MAX_SECRET_NAME_LEN} bytes"
            ))));
        }
        if !caps.grants.secret_read.contains(&name) {
            return Ok(Err(caps.deny(format!("secret:{name}:read"))));
        }
        let mut span = caps.span(format!("secret {name}"), nimbus_trace::SpanKind::Internal);
        let read = caps.services.secrets.get(&name).await;
        if read.is_err() {
            span.fail("the secret could not be read");
        }
        span.end();
        Ok(match read {
            Ok(Some(value)) => Ok(value.into_bytes()),
            Ok(None) => Err(Error::NotFound(format!("secret `{name}`"))),
            Err(e) => {
                // Vault errors name the secret, never its value.
                tracing::error!(function = %caps.function, invocation_id = %caps.invocation_id, "secret read failed: {e}");
                match e {
                    VaultError::Name(e) => Err(Error::Invalid(e.to_string())),
                    _ => Err(Error::Unavailable(format!(
                        "secret `{name}` could not be read; see the server log"
                    ))),
                }
            }
        })
    }
}
