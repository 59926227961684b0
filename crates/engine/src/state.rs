//! Per-invocation host state: the `T` in `Store<T>`, and the views through
//! which wasmtime-wasi and wasmtime-wasi-http reach it.

use crate::capabilities::CapabilityCtx;
use crate::egress::EgressHooks;
use crate::limits::{MAX_FIELD_BYTES, MAX_RESOURCE_HANDLES, MemoryCap};
use crate::output::{OutputBudget, Stream};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything one instance may touch. Dropped, with the store, when the
/// invocation ends.
pub struct InvocationState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limits: MemoryCap,
    /// Outbound HTTP: the function's allow-list and address checks.
    hooks: EgressHooks,
    pub(crate) capabilities: CapabilityCtx,
    pub(crate) output: Arc<OutputBudget>,
}

impl InvocationState {
    pub(crate) fn new(
        env: &[(String, String)],
        output: &Arc<OutputBudget>,
        limits: MemoryCap,
        capabilities: CapabilityCtx,
        egress: EgressHooks,
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
        // Host memory a guest can pin through handles is bounded: so many
        // handles, each header collection so large.
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELD_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCE_HANDLES);
        InvocationState {
            wasi: wasi.build(),
            http,
            table,
            limits,
            hooks: egress,
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
