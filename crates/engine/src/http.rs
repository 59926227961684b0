//! HTTP functions: components exporting `wasi:http/incoming-handler`, each
//! request served by a fresh instance under the function's limits.

use crate::history::{Trigger, TriggerKind, trace_id};
use crate::invocation::{FunctionCore, InvokeError, RecordContext};
use crate::state::InvocationState;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body of a function's response, streamed as the guest writes it.
pub type ResponseBody = HyperOutgoingBody;

/// A function ready to serve HTTP requests.
pub struct HttpFunction {
    core: Arc<FunctionCore>,
    pre: ProxyPre<InvocationState>,
}

impl HttpFunction {
    pub(crate) fn new(core: Arc<FunctionCore>, pre: ProxyPre<InvocationState>) -> Self {
        HttpFunction { core, pre }
    }

    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Serves one request in a fresh instance. Returns once the guest has set
    /// the response head; the body then streams while the instance keeps
    /// running, until the guest finishes or the deadline passes.
    ///
    /// The invocation's span is a child of `parent` (the gateway's); the
    /// guest sees its context in the `traceparent` header.
    pub async fn handle<B>(
        &self,
        mut request: http::Request<B>,
        invocation_id: &str,
        parent: Option<&nimbus_trace::TraceContext>,
    ) -> Result<http::Response<ResponseBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // The gateway sets `x-nimbus-route` (clients cannot: it drops their
        // `x-nimbus-*` headers).
        let trigger = Trigger::new(
            TriggerKind::Http,
            header("x-nimbus-route").unwrap_or_default(),
        );
        let incoming_trace = header("traceparent").as_deref().and_then(trace_id);
        let context = |output, trace: Option<String>, spans| RecordContext {
            trigger: trigger.clone(),
            attempt: 1,
            trace_id: trace,
            output,
            spans,
        };
        let permit = match self.core.try_permit() {
            Ok(permit) => permit,
            Err(e) => {
                self.core
                    .record_throttled(invocation_id, context(None, incoming_trace, None));
                return Err(e);
            }
        };
        let started = Instant::now();
        let deadline = started + self.core.timeout;
        let invocation_id: Arc<str> = invocation_id.into();
        let trace = self.core.invocation_trace(&invocation_id, parent);
        if let Ok(value) = http::HeaderValue::from_str(&trace.span.context.to_traceparent()) {
            request.headers_mut().insert("traceparent", value);
        }
        let mut store = self
            .core
            .store(self.pre.engine(), &invocation_id, deadline, 0, &trace);
        let name = self.core.name.clone();
        let record = context(
            Some(store.data().output.clone()),
            Some(trace.span.context.trace_id_hex()),
            Some(trace.recorder.clone()),
        );
        let span = trace.span;

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
            tracing::error!(function = %name, invocation_id = %invocation_id, "could not pass the request to the function: {e}");
            InvokeError::Failed(e.into())
        })?;

        let (outcome_sender, outcome) = oneshot::channel();
        let pre = self.pre.clone();
        let core = self.core.clone();
        let id = invocation_id.clone();
        let task = tokio::spawn(async move {
            tracing::debug!(function = %core.name, invocation_id = %id, "invocation started");
            let run = async {
                let instantiating = Instant::now();
                let proxy = pre.instantiate_async(&mut store).await?;
                core.instance_started(instantiating.elapsed());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let result = core.run(deadline, run).await;
            // The response body must know how the invocation ended before the
            // store (and with it the body's sender) is dropped.
            let _ = outcome_sender.send(result.is_ok());
            // Stop the instance (and flush its output) before reporting.
            drop(store);
            drop(permit);
            core.end_span(span, &result);
            core.log_outcome(&id, started, &result, record);
            result
        });

        let failed = |message: String| {
            tracing::error!(function = %name, invocation_id = %invocation_id, "{message}");
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

/// Turns a fixed body into a [`ResponseBody`], for responses the host makes.
pub fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
