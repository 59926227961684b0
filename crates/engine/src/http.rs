//! HTTP functions: components exporting `wasi:http/incoming-handler`, each
//! request served by a fresh instance under the function's limits.

use crate::limits::MemoryCap;
use crate::output::OutputBudget;
use crate::state::InvocationState;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame};
use nimbus_manifest::Function;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot::error::TryRecvError;
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
            concurrency: Arc::new(Semaphore::new(function.max_concurrency as usize)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
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
        let (req, out) = setup.map_err(|e: wasmtime::Error| {
            tracing::error!(function = %self.name, invocation_id = %invocation_id, "could not pass the request to the function: {e}");
            InvokeError::Failed(e.into())
        })?;

        let (outcome_sender, outcome) = oneshot::channel();
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
            // The response body must know how the invocation ended before the
            // store (and with it the body's sender) is dropped.
            let _ = outcome_sender.send(result.is_ok());
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

        let failed = |message: String| {
            tracing::error!(function = %self.name, invocation_id = %invocation_id, "{message}");
            InvokeError::Failed(anyhow::anyhow!(message))
        };
        match receiver.await {
            Ok(Ok(response)) => {
                Ok(response.map(|inner| GuardedBody { inner, outcome }.boxed_unsync()))
            }
            Ok(Err(code)) => Err(failed(format!(
                "function set an error instead of a response: {code:?}"
            ))),
            Err(_) => match task.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Err(failed(
                    "function returned without sending a response".to_owned(),
                )),
                Err(join) => Err(failed(format!("invocation task failed: {join}"))),
            },
        }
    }
}

/// A function's response body that ends in an error, not a clean end, when
/// the invocation failed after the response head was sent (a trap or the
/// deadline mid-body), so a client never takes a cut-off body for a whole one.
struct GuardedBody {
    inner: ResponseBody,
    /// Whether the invocation succeeded; sent before the instance is dropped.
    outcome: oneshot::Receiver<bool>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => match self.outcome.try_recv() {
                // Still running: the guest finished the body itself.
                Ok(true) | Err(TryRecvError::Empty) => Poll::Ready(None),
                Ok(false) | Err(TryRecvError::Closed) => {
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpResponseIncomplete)))
                }
            },
            other => other,
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
