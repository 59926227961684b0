//! A bare invocation for the instantiation microbenchmark: a fresh store set
//! up exactly as an invocation's (limits, deadline, WASI and wasi:http
//! context, span), a fresh instance, one call of a `() -> u32` export; no
//! permit, no history record, no metrics.

use crate::capabilities::Services;
use crate::invocation::FunctionCore;
use crate::state::InvocationState;
use anyhow::Context as _;
use nimbus_manifest::Function;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre};

/// A component prepared as a function is, with one `() -> u32` export to call.
pub struct BareFunction {
    core: Arc<FunctionCore>,
    pre: InstancePre<InvocationState>,
    export: ComponentExportIndex,
}

impl BareFunction {
    /// Prepares `component` (already compiled for `runtime`'s engine) under
    /// `function`'s settings, to call its export `export`.
    pub fn new(
        runtime: &crate::Runtime,
        function: &Function,
        component: &Component,
        export: &str,
        services: &Arc<Services>,
    ) -> anyhow::Result<Self> {
        let pre = runtime
            .linker()
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)?;
        let (_, export) = component
            .get_export(None, export)
            .with_context(|| format!("the component exports no `{export}`"))?;
        Ok(BareFunction {
            core: Arc::new(FunctionCore::new(function, services.clone())),
            pre,
            export,
        })
    }

    /// One invocation: a fresh store and instance, the export called once.
    pub async fn call(&self, invocation_id: &str) -> anyhow::Result<u32> {
        let invocation_id: Arc<str> = invocation_id.into();
        let deadline = Instant::now() + self.core.timeout;
        let trace = self.core.invocation_trace(&invocation_id, None);
        let mut store = self
            .core
            .store(self.pre.engine(), &invocation_id, deadline, 0, &trace);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let run = instance.get_typed_func::<(), (u32,)>(&mut store, self.export)?;
        let (value,) = run.call_async(&mut store, ()).await?;
        Ok(value)
    }
}
