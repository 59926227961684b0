//! Instantiation microbenchmark, two figures through the engine exactly as
//! `nimbus up` sets it up (`Runtime::new` with the server's default pool:
//! 1000 slots, 4096 MiB per memory; the same linker):
//!
//! - `bare`: what issue 17 asks for. A fresh store set up as every
//!   invocation's is (memory limiter, epoch deadline, WASI and wasi:http
//!   context, resource table, output budget, span), a trivial component
//!   (one core function returning 42, lifted as `run: func() -> u32`)
//!   instantiated in it, `run` called once. Criterion's median is the p50
//!   to compare with the aim (under 20 µs).
//! - `hello`: a whole `HttpFunction::handle` of the `hello` test component
//!   (the same store, a Rust guest's instantiation, its
//!   `wasi:http/incoming-handler.handle` called with a GET, the response
//!   body read to its end, the history record and the metrics).
//!
//!   CARGO_TARGET_DIR=... cargo bench -p nimbus-engine --bench instantiate

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt as _, Full};
use nimbus_engine::{
    ArtifactCache, BareFunction, EngineSettings, HttpFunction, LoadedFunction,
    MAX_POOLED_INSTANCES, Runtime, Services,
};
use nimbus_manifest::App;
use nimbus_store::SystemClock;
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::sync::Arc;

/// `nimbus up`'s default `--max-function-memory-mb`.
const SERVER_MAX_MEMORY_MB: u32 = 4096;

const INVOCATION_ID: &str = "0193a0c0-0000-7000-8000-000000000000";

struct Setup {
    tokio: tokio::runtime::Runtime,
    function: HttpFunction,
    bare: BareFunction,
    _runtime: Runtime,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let manifest = format!(
        "[app]\nname = \"bench\"\n\n[function.hello]\ncomponent = '{}'\nmax_concurrency = 1000\n\n\
         [[trigger.http]]\nroute = \"/...\"\nfunction = \"hello\"\nauth = \"public\"\n",
        nimbus_test_programs::HELLO
    );
    let app = App::parse(&dir.path().join("nimbus.toml"), &manifest).expect("manifest");
    let options = SqliteOptions {
        path: dir.path().join("nimbus.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).expect("store"));
    let metrics = Arc::new(nimbus_metrics::Metrics::default());
    let (secret_key, _) = nimbus_vault::SecretKey::load_or_create(&dir.path().join("secrets.key"))
        .expect("secret key");
    let buckets = Arc::new(
        nimbus_bucket::Buckets::open(&app, &dir.path().join("buckets"), store.clone())
            .expect("buckets"),
    );
    let in_runtime = tokio.enter();
    let secrets = tokio
        .block_on(nimbus_vault::Vault::open(store.clone(), &secret_key))
        .expect("vault");
    let services = Arc::new(Services {
        tables: store.clone(),
        table_configs: Arc::new(app.tables.clone()),
        queues: store.clone(),
        secrets: Arc::new(secrets),
        functions: Default::default(),
        metrics: metrics.clone(),
        tracer: nimbus_trace::Tracer::disabled(),
        history: nimbus_engine::History::start(store.clone(), metrics, "bench"),
        buckets,
    });
    let runtime = Runtime::new(EngineSettings {
        max_memory_mb: SERVER_MAX_MEMORY_MB,
        pooled_instances: MAX_POOLED_INSTANCES,
        max_wasm_stack_kb: nimbus_engine::DEFAULT_MAX_WASM_STACK_KB,
    })
    .expect("engine");
    let cache = ArtifactCache::new(dir.path().join("artifacts"));
    let (loaded, _) = runtime
        .load_function(&app.functions["hello"], &cache, &services)
        .expect("load hello");
    let LoadedFunction::Http(function) = loaded else {
        panic!("hello is not an HTTP function");
    };
    let trivial = wasmtime::component::Component::new(runtime.engine(), trivial_component())
        .expect("trivial component compiles");
    let bare = BareFunction::new(
        &runtime,
        &app.functions["hello"],
        &trivial,
        "run",
        &services,
    )
    .expect("trivial component links");
    drop(in_runtime);
    Setup {
        tokio,
        function,
        bare,
        _runtime: runtime,
        _dir: dir,
    }
}

/// A component with no imports and one export, `run: func() -> u32`,
/// lifted from a core function that returns 42.
fn trivial_component() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, ComponentBuilder, ComponentExportKind, ComponentValType, ExportKind,
        ExportSection, Function, FunctionSection, Module, PrimitiveValType, TypeSection, ValType,
    };
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    module.section(&types);
    let mut functions = FunctionSection::new();
    functions.function(0);
    module.section(&functions);
    let mut exports = ExportSection::new();
    exports.export("run", ExportKind::Func, 0);
    module.section(&exports);
    let mut code = CodeSection::new();
    let mut body = Function::new([]);
    body.instructions().i32_const(42).end();
    code.function(&body);
    module.section(&code);

    let mut component = ComponentBuilder::default();
    let module = component.core_module(None, &module);
    let instance = component.core_instantiate(None, module, []);
    let core_run = component.core_alias_export(None, instance, "run", ExportKind::Func);
    let (run_type, encoder) = component.ty(None);
    encoder
        .function()
        .params::<[(&str, ComponentValType); 0], _>([])
        .result(Some(ComponentValType::Primitive(PrimitiveValType::U32)));
    let run = component.lift_func(None, core_run, run_type, []);
    component.export("run", ComponentExportKind::Func, run, None);
    component.finish()
}

async fn invoke(function: &HttpFunction) -> Bytes {
    let request = http::Request::get("http://127.0.0.1/bench")
        .header("x-nimbus-route", "/...")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = function
        .handle(request, INVOCATION_ID, None)
        .await
        .expect("hello answers");
    assert_eq!(response.status(), 200);
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn instantiate_and_call(c: &mut Criterion) {
    let setup = setup();
    assert_eq!(
        &setup.tokio.block_on(invoke(&setup.function))[..],
        b"hello, world\n"
    );
    assert_eq!(
        setup
            .tokio
            .block_on(setup.bare.call(INVOCATION_ID))
            .expect("run"),
        42
    );
    c.bench_function(
        "bare: fresh store (as an invocation's) + trivial instance + call",
        |b| {
            b.iter(|| {
                setup
                    .tokio
                    .block_on(setup.bare.call(INVOCATION_ID))
                    .expect("run")
            })
        },
    );
    c.bench_function(
        "hello: fresh instance + handle (HttpFunction::handle)",
        |b| b.iter(|| setup.tokio.block_on(invoke(&setup.function))),
    );
}

criterion_group!(benches, instantiate_and_call);
criterion_main!(benches);
