//! HTTP functions: components exporting `wasi:http/incoming-handler`, each
//! request served by a fresh instance under the function's limits.

use crate::limits::MemoryCap;
use crate::output::OutputBudget;
use crate::state::InvocationState;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Body;
use nimbus_manifest::Function;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot};
use wasmtime::component::InstancePre;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body of a function's response, streamed as the guest writes it.
pub type ResponseBody = HyperOutgoingBody;

/// Why an invocation produced no response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// All `max_concurrency` instances (or the pool's slots) are in use.
    #[error("function is at its concurrency limit")]
    Busy,
    /// The wall-clock deadline passed; the instance was stopped.
    #[error("function did not finish within its {timeout_ms} ms deadline")]
    DeadlineExceeded { timeout_ms: u64 },
    /// The guest trapped, failed to instantiate, or never responded.
    #[error("function failed: {0:#}")]
    Failed(anyhow::Error),
}

/// Raised by the epoch callback when an invocation runs past its deadline.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// A function ready to serve HTTP requests.
pub struct HttpFunction {
    name: Arc<str>,
    pre: ProxyPre<InvocationState>,
    env: Vec<(String, String)>,
    memory_mb: u32,
    timeout: Duration,
    max_log_bytes: u64,
    max_concurrency: usize,
    concurrency: Arc<Semaphore>,
}

impl HttpFunction {
    pub(crate) fn new(
        function: &Function,
        pre: InstancePre<InvocationState>,
    ) -> anyhow::Result<Self> {
        let pre = ProxyPre::new(pre).map_err(|e| {
            anyhow::Error::from(e).context(format!(
                "function `{}` does not export wasi:http/incoming-handler",
                function.name
            ))
        })?;
        Ok(HttpFunction {
            name: function.name.as_str().into(),
            pre,
            env: function
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            memory_mb: function.memory_mb,
            timeout: Duration::from_millis(function.timeout_ms),
            max_log_bytes: function.max_log_bytes,
            max_concurrency: function.max_concurrency as usize,
            concurrency: Arc::new(Semaphore::new(function.max_concurrency as usize)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Instances of this function running now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency - self.concurrency.available_permits()
    }

    /// Serves one request in a fresh instance. Returns once the guest has set
    /// the response head; the body then streams while the instance keeps
    /// running, until the guest finishes or the deadline passes.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
        invocation_id: &str,
    ) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let permit = self
            .concurrency
            .clone()
            .try_acquire_owned()
            .map_err(|_| InvokeError::Busy)?;
        let started = Instant::now();
        let deadline = started + self.timeout;
        let timeout_ms = self.timeout.as_millis() as u64;
        let invocation_id: Arc<str> = invocation_id.into();

        let output =
            OutputBudget::new(self.name.clone(), invocation_id.clone(), self.max_log_bytes);
        let limits = MemoryCap::new(self.memory_mb);
        let mut store = Store::new(
            self.pre.engine(),
            InvocationState::new(&self.env, &output, limits),
        );
        drop(output);
        store.limiter(|state| &mut state.limits);
        // Every epoch tick the guest yields to other tasks; past the deadline
        // it traps. A guest blocked in a host call is stopped by the timeout
        // around the whole invocation instead.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let (sender, receiver) = oneshot::channel();
        let setup = (|| {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            wasmtime::Result::Ok((req, out))
        })();
        let (req, out) = setup.map_err(|e: wasmtime::Error| InvokeError::Failed(e.into()))?;

        let pre = self.pre.clone();
        let name = self.name.clone();
        let id = invocation_id.clone();
        let task = tokio::spawn(async move {
            tracing::debug!(function = %name, invocation_id = %id, "invocation started");
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let result = match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.is::<DeadlineExceeded>() => {
                    Err(InvokeError::DeadlineExceeded { timeout_ms })
                }
                Ok(Err(e)) if e.is::<wasmtime::PoolConcurrencyLimitError>() => {
                    Err(InvokeError::Busy)
                }
                Ok(Err(e)) => Err(InvokeError::Failed(e.into())),
                Err(_elapsed) => Err(InvokeError::DeadlineExceeded { timeout_ms }),
            };
            // Stop the instance (and flush its output) before reporting.
            drop(store);
            drop(permit);
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            match &result {
                Ok(()) => {
                    tracing::info!(function = %name, invocation_id = %id, duration_ms, "invocation finished")
                }
                Err(InvokeError::Failed(e)) => {
                    tracing::error!(function = %name, invocation_id = %id, duration_ms, "invocation failed: {}", describe(e));
                    tracing::debug!(function = %name, invocation_id = %id, "failure in full: {e:?}");
                }
                Err(e) => {
                    tracing::error!(function = %name, invocation_id = %id, duration_ms, "invocation failed: {e}")
                }
            }
            result
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(InvokeError::Failed(anyhow::anyhow!(
                "function set an error instead of a response: {code:?}"
            ))),
            Err(_) => match task.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(InvokeError::Failed(anyhow::anyhow!(
                    "function returned without sending a response"
                ))),
                Err(join) => Err(InvokeError::Failed(join.into())),
            },
        }
    }
}

/// One line for the log: the error chain without the (multi-line) wasm
/// backtrace, which is logged at debug level instead.
fn describe(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.starts_with("error while executing at wasm backtrace"))
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// Turns a fixed body into a [`ResponseBody`], for responses the host makes.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
