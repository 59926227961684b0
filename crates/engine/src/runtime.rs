//! Process-wide wasmtime objects: the engine (pooling allocator, epoch
//! interruption), the linker with WASI and wasi:http, and the epoch ticker.

use crate::cache::{ArtifactCache, CacheOutcome};
use crate::capabilities::Services;
use crate::event::EventFunction;
use crate::http::HttpFunction;
use crate::invocation::FunctionCore;
use crate::state::InvocationState;
use anyhow::Context as _;
use nimbus_manifest::{App, Function};
use nimbus_wit::EventFunctionPre;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// How often the engine's epoch advances. Deadlines are checked, and running
/// guests yield to other tasks, at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Upper bound on pooled instance slots, whatever the app asks for.
pub const MAX_POOLED_INSTANCES: u32 = 1000;

/// Written pages of one slot's linear memory reset in place (and kept
/// resident) rather than given back to the kernel, when the kernel supports
/// PAGEMAP_SCAN: at most this much resident memory per used pool slot.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;
/// The same for one slot's tables.
const TABLE_KEEP_RESIDENT: usize = 256 << 10;

/// Engine settings derived from the app; they shape the instance pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// Largest linear memory any instance may grow to, in MiB.
    pub max_memory_mb: u32,
    /// Instance slots in the pool.
    pub pooled_instances: u32,
    /// Wasm stack every invocation may use, in KiB; deeper recursion traps.
    /// wasmtime sets this per engine, so it holds for every function.
    pub max_wasm_stack_kb: u32,
}

/// Default of [`EngineSettings::max_wasm_stack_kb`] (wasmtime's own default).
pub const DEFAULT_MAX_WASM_STACK_KB: u32 = 512;
/// Fiber stack beyond the wasm stack, for host calls made from wasm.
const HOST_STACK_HEADROOM: usize = 1536 << 10;

impl EngineSettings {
    /// Enough pool for every function at its `max_concurrency`, within
    /// [`MAX_POOLED_INSTANCES`].
    pub fn for_app(app: &App) -> Self {
        let max_memory_mb = app
            .functions
            .values()
            .map(|f| f.memory_mb)
            .max()
            .unwrap_or(1);
        let wanted: u64 = app
            .functions
            .values()
            .map(|f| u64::from(f.max_concurrency))
            .sum();
        EngineSettings {
            max_memory_mb,
            pooled_instances: wanted.clamp(1, u64::from(MAX_POOLED_INSTANCES)) as u32,
            max_wasm_stack_kb: DEFAULT_MAX_WASM_STACK_KB,
        }
    }
}

/// The process's wasmtime engine and linker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InvocationState>,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(settings: EngineSettings) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let n = settings.pooled_instances;
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .total_stacks(n)
            .max_memory_size((settings.max_memory_mb as usize) << 20);
        // A fresh instance per request reuses a slot another instance just
        // left. By default its memory is handed back to the kernel
        // (`madvise`) and every page the next instance touches faults in
        // again: a fifth of an HTTP request's time (BENCHMARKS.md). Where
        // the kernel can say which pages were written (PAGEMAP_SCAN, Linux
        // 6.7+), those pages are instead reset to their initial contents in
        // place, up to these sizes per slot; the rest is still given back.
        // The next instance starts from the same initial state either way.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .table_keep_resident(TABLE_KEEP_RESIDENT);
        }

        let max_wasm_stack = (settings.max_wasm_stack_kb as usize) << 10;
        let mut config = Config::new();
        config
            .max_wasm_stack(max_wasm_stack)
            .async_stack_size(max_wasm_stack + HOST_STACK_HEADROOM)
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("failed to create the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        // The Nimbus imports, for event and HTTP functions alike.
        nimbus_wit::EventFunction::add_to_linker::<InvocationState, HasSelf<InvocationState>>(
            &mut linker,
            |state| state,
        )
        .map_err(anyhow::Error::from)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone())?;
        Ok(Runtime {
            engine,
            linker,
            ticker_stop,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<InvocationState> {
        &self.linker
    }

    /// Compiles (or loads from `cache`) a function's component and prepares it
    /// for per-invocation instantiation: as an HTTP function if it exports
    /// `wasi:http/incoming-handler`, as an event function if it exports
    /// `nimbus:function/handler`.
    pub fn load_function(
        &self,
        function: &Function,
        cache: &ArtifactCache,
        services: &Arc<Services>,
    ) -> anyhow::Result<(LoadedFunction, CacheOutcome)> {
        let bytes = std::fs::read(&function.component).with_context(|| {
            format!("failed to read component {}", function.component.display())
        })?;
        self.load_function_bytes(function, &bytes, cache, services)
    }

    /// [`Runtime::load_function`] with the component's bytes given (a
    /// deployment's, from the store) rather than read from its file.
    pub fn load_function_bytes(
        &self,
        function: &Function,
        bytes: &[u8],
        cache: &ArtifactCache,
        services: &Arc<Services>,
    ) -> anyhow::Result<(LoadedFunction, CacheOutcome)> {
        let (component, outcome) = cache
            .load(&self.engine, bytes)
            .with_context(|| format!("function `{}`", function.name))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "function `{}` imports something Nimbus does not provide",
                    function.name
                )
            })?;
        let core = Arc::new(FunctionCore::new(function, services.clone()));
        let loaded = if let Ok(proxy) = ProxyPre::new(pre.clone()) {
            LoadedFunction::Http(HttpFunction::new(core, proxy))
        } else if let Ok(handler) = EventFunctionPre::new(pre) {
            LoadedFunction::Event(EventFunction::new(core, handler))
        } else {
            anyhow::bail!(
                "function `{}` exports neither wasi:http/incoming-handler (an HTTP function) nor \
                 nimbus:function/handler (an event function)",
                function.name
            );
        };
        Ok((loaded, outcome))
    }
}

/// A function ready to run, by the interface its component exports.
pub enum LoadedFunction {
    Http(HttpFunction),
    Event(EventFunction),
}

impl LoadedFunction {
    pub fn kind(&self) -> crate::FunctionKind {
        match self {
            LoadedFunction::Http(_) => crate::FunctionKind::Http,
            LoadedFunction::Event(_) => crate::FunctionKind::Event,
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the epoch every [`EPOCH_TICK`] on a thread of its own, so a guest
/// spinning on a runtime worker cannot stop deadlines from being noticed.
fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("nimbus-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .context("failed to start the epoch ticker")?;
    Ok(())
}
