//! Per-invocation host state: the `T` in `Store<T>`, and the views through
//! which wasmtime-wasi and wasmtime-wasi-http reach it.

use crate::capabilities::CapabilityCtx;
use crate::limits::MemoryCap;
use crate::output::{OutputBudget, Stream};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Everything one instance may touch. Dropped, with the store, when the
/// invocation ends.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limits: MemoryCap,
    hooks: DenyOutboundHttp,
    pub(crate) capabilities: CapabilityCtx,
    pub(crate) output: Arc<OutputBudget>,
}

impl InvocationState {
    pub(crate) fn new(
        env: &[(String, String)],
        output: &Arc<OutputBudget>,
        limits: MemoryCap,
        capabilities: CapabilityCtx,
    ) -> Self {
        let mut wasi = WasiCtx::builder();
        wasi.envs(env)
            .stdout(output.sink(Stream::Stdout))
            .stderr(output.sink(Stream::Stderr))
            // No preopened directories, no sockets: a function reaches the
            // outside world only through capabilities it is granted.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        InvocationState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
            hooks: DenyOutboundHttp,
            capabilities,
            output: output.clone(),
        }
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP is denied until a function is granted hosts to reach; the
/// guest sees `HTTP-request-denied`, never a trap.
struct DenyOutboundHttp;

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for DenyOutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        tracing::warn!(uri = %request.uri(), "outbound HTTP request denied: no outbound hosts are allowed");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
