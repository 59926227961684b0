//! `nimbus up`: load the app, open the store and the secret vault, compile or
//! load its components, bind the listeners, report where they are, and serve
//! until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Args;
use nimbus_engine::{
    ArtifactCache, CacheOutcome, EngineSettings, FunctionDirectory, LoadedFunction, Runtime,
    Services,
};
use nimbus_gateway::auth::{ApiKeys, Authenticator, JwtVerifier};
use nimbus_gateway::{Drain, PublicGateway, ServerLimits};
use nimbus_manifest::{App, RouteAuth};
use nimbus_store::queue::QueueConfig;
use nimbus_store::{Clock, Store, StreamView, SystemClock, TableConfig};
use nimbus_store_postgres::{PgOptions, PgStore};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long cancelling leftover tasks may take after the grace period.
const SHUTDOWN_CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct UpArgs {
    /// The app's manifest.
    #[arg(default_value = "nimbus.toml")]
    manifest: PathBuf,
    /// Run the functions' build commands first.
    #[arg(long)]
    build: bool,
    /// Address of the public gateway (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    listen: SocketAddr,
    /// Address of the admin listener (health, readiness).
    #[arg(long, default_value = "127.0.0.1:3001", value_name = "ADDR")]
    admin_listen: SocketAddr,
    /// Where Nimbus keeps its state, such as compiled artifacts
    /// [default: $XDG_DATA_HOME/nimbus/APP, else ~/.local/share/nimbus/APP].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    shutdown_grace_ms: u64,
    /// Wasm stack each invocation may use, in KiB (for every function: the
    /// engine sets it once); deeper recursion traps and the request gets 500.
    #[arg(long, default_value_t = nimbus_engine::DEFAULT_MAX_WASM_STACK_KB, value_name = "KIB", value_parser = clap::value_parser!(u32).range(64..=65_536))]
    max_wasm_stack_kb: u32,
    /// Export traces over OTLP/HTTP (JSON) to this endpoint, e.g.
    /// `http://127.0.0.1:4318` (spans go to ENDPOINT/v1/traces). Without
    /// it, nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Open connections each listener accepts at once.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Time a client has to send a request's headers, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// The token `/v1` requests must carry [default: generated on first start
    /// into DATA_DIR/admin-token, readable only by this user].
    #[arg(
        long,
        env = "NIMBUS_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Where state lives: `sqlite:PATH` (embedded), or
    /// `postgres://USER@HOST:PORT/DATABASE` (the password from the URL,
    /// PGPASSWORD or the pass file; TLS with `?sslmode=verify-full` and
    /// `&sslrootcert=PATH`) [default: sqlite:DATA_DIR/nimbus.db].
    // Parsed after clap, whose own errors would echo a password in the URL.
    #[arg(
        long,
        env = "NIMBUS_STORE",
        hide_env_values = true,
        value_name = "STORE"
    )]
    store: Option<String>,
    /// Where object bytes live: `s3://BUCKET[/PREFIX]` (an S3 bucket every
    /// node shares; settings from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION [default: us-east-1] and AWS_ENDPOINT_URL_S3 or
    /// AWS_ENDPOINT_URL for other S3-compatible services), or `file:PATH`
    /// [default: file:DATA_DIR/buckets].
    #[arg(
        long,
        env = "NIMBUS_OBJECTS",
        hide_env_values = true,
        value_name = "LOCATION"
    )]
    objects: Option<String>,
    /// `fsync`: acknowledge writes only once they survive power loss.
    /// `relaxed`: faster, but the last writes before a power loss or OS crash
    /// (on PostgreSQL: a database crash) can be lost (logged as a warning at
    /// startup; on PostgreSQL it is `synchronous_commit = off`).
    #[arg(long, value_enum, default_value_t = StoreDurability::Fsync)]
    store_durability: StoreDurability,
    /// The key that seals secrets, kept apart from the data directory;
    /// created (0600) on first start if missing
    /// [default: $XDG_CONFIG_HOME/nimbus/APP/secrets.key, else ~/.config/nimbus/APP/secrets.key].
    #[arg(long, env = "NIMBUS_SECRET_KEY_FILE", value_name = "PATH")]
    secret_key_file: Option<PathBuf>,
    /// Largest request head (request line and headers) in bytes; a larger
    /// one gets 431.
    #[arg(long, default_value_t = 65_536, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(8_192..=1_048_576))]
    max_header_bytes: u32,
    /// Time a client has to send a request's body, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_ms: u64,
    /// How long invocation records (and their captured output) are kept, in
    /// seconds; at most `MAX_HISTORY_RECORDS` are kept whatever this says.
    #[arg(long, default_value_t = 86_400, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    history_retention_s: u64,
    /// This node's id, in its logs and leases; nodes sharing a store need
    /// different ones [default: kept in the data directory, generated on
    /// first start].
    #[arg(long, env = "NIMBUS_NODE_ID", value_name = "ID")]
    node_id: Option<String>,
    /// How long a node owns singleton work (a stream lane) without renewing,
    /// in milliseconds: work of a node that stops renewing moves to another
    /// node within this.
    #[arg(long, env = "NIMBUS_LEASE_MS", default_value_t = nimbus_dispatch::ownership::DEFAULT_LEASE.as_millis() as u64, value_name = "MS", value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    lease_ms: u64,
    /// Test seam: time (for the store, schedules and event ages) stands still
    /// from the start, moving only when `POST /v1/test/clock` advances it.
    /// Hidden: never for production use.
    #[arg(long, hide = true)]
    test_clock: bool,
    /// Test seam: with `--test-clock`, where the clock starts (ms since the
    /// epoch) instead of the system time, so a restart can resume where a
    /// test left off. Hidden: never for production use.
    #[arg(long, hide = true, value_name = "MS", requires = "test_clock")]
    test_clock_start_ms: Option<u64>,
}

/// Which backend holds the state, from `--store`.
enum StoreLocation {
    Sqlite(PathBuf),
    /// The URL as given; it may hold a password, so it is never printed.
    Postgres(String),
}

impl StoreLocation {
    fn parse(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("`sqlite:` needs a path, as in sqlite:./state/nimbus.db".into());
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_owned()));
        }
        // Only the scheme: the rest may be a URL with a password in it.
        let scheme = text.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(format!(
            "the store must be sqlite:PATH or postgres://USER@HOST:PORT/DATABASE, not a `{scheme}:` location"
        ))
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(_) => f.write_str("postgres://…"),
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum StoreDurability {
    Fsync,
    Relaxed,
}

/// How often messages past their retention (and stale dedup ids) are swept.
const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let app = App::load(&args.manifest)?;
    if args.build {
        crate::build::build_app(&app)?;
    }
    app.check_components()?;
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => default_data_dir(&app.name)?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("failed to create the data directory {}", data_dir.display()))?;
    let node = crate::node::resolve(args.node_id.as_deref(), &data_dir)?;

    let admin_token = match &args.admin_token {
        Some(token) if token.len() >= MIN_ADMIN_TOKEN_LEN => token.clone(),
        Some(_) => anyhow::bail!("--admin-token must be at least {MIN_ADMIN_TOKEN_LEN} characters"),
        None => stored_admin_token(&data_dir)?,
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let test_clock = args.test_clock.then(|| {
        nimbus_store::ManualClock::new(
            args.test_clock_start_ms
                .unwrap_or_else(|| SystemClock.now_ms()),
        )
    });
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(manual) => {
            tracing::warn!("--test-clock: time moves only when POST /v1/test/clock says so");
            Arc::new(manual.clone())
        }
        None => Arc::new(SystemClock),
    };
    let location = args
        .store
        .as_deref()
        .map(StoreLocation::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--store: {e}"))?;
    let shared_store = matches!(location, Some(StoreLocation::Postgres(_)));
    let store = tokio.block_on(open_store(
        &app,
        location,
        &data_dir,
        args.store_durability,
        clock.clone(),
        test_clock.is_some(),
    ))?;
    // On a shared store the database's clock judges leases and retention;
    // this node's clock is moved to agree with it, so event ages and
    // schedule due times are judged the same way on every node.
    let clock: Arc<dyn Clock> = if shared_store && test_clock.is_none() {
        let aligned = Arc::new(nimbus_store::AlignedClock::default());
        tokio
            .block_on(align_clock(&aligned, store.as_ref()))
            .context("failed to read the store's clock")?;
        tokio.spawn(align_clock_periodically(aligned.clone(), store.clone()));
        aligned
    } else {
        clock
    };
    // Before any listener is up, so the test clock cannot have moved yet.
    let started_ms = clock.now_ms();
    let secrets = tokio.block_on(crate::secret::open_vault(
        args.secret_key_file.as_deref(),
        &app.name,
        store.clone(),
        &store.location(),
    ))?;
    // The store wakes workers after its commits (and, on PostgreSQL, after
    // other processes' commits).
    let signals = store.signals().clone();
    let metrics = Arc::new(nimbus_metrics::Metrics::default());
    metrics.node_info.with(&[&node]).set(1);
    let objects = blob_storage(args.objects.as_deref(), &data_dir)
        .map_err(|e| anyhow::anyhow!("--objects: {e}"))?;
    let buckets = Arc::new(
        tokio
            .block_on(nimbus_bucket::Buckets::open_in(
                &app,
                &objects,
                store.clone(),
            ))
            .context("failed to open the buckets")?
            .with_metrics(metrics.clone())
            .with_uploader(&node),
    );
    if !app.buckets.is_empty() {
        tracing::info!("object bytes in {}", buckets.storage());
    }
    // Unreferenced blobs left by uploads cut off before their commit go
    // now, whatever their age, unless an upload registered in the store is
    // still writing them (on S3, another node's: this node's own
    // registrations are its dead predecessor's and end here).
    match tokio.block_on(buckets.sweep_orphans_at_start()) {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} orphaned blobs left by interrupted uploads"),
        Err(e) => tracing::warn!("failed to sweep orphaned blobs: {e}"),
    }
    store.observe(metrics.clone());
    let (tracer, exporter) = match &args.otlp_endpoint {
        Some(endpoint) => {
            let _in_runtime = tokio.enter();
            let (tracer, exporter) = nimbus_trace::spawn_exporter(endpoint, &app.name);
            tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
            (tracer, Some(exporter))
        }
        None => (nimbus_trace::Tracer::disabled(), None),
    };
    let history = {
        let _runtime = tokio.enter();
        nimbus_engine::History::start(store.clone(), metrics.clone(), &node)
    };
    let table_configs = Arc::new(app.tables.clone());
    let services = Arc::new(Services {
        tables: store.clone(),
        table_configs: table_configs.clone(),
        queues: store.clone(),
        secrets: secrets.clone(),
        functions: FunctionDirectory::default(),
        metrics: metrics.clone(),
        tracer: tracer.clone(),
        history: history.clone(),
        buckets: buckets.clone(),
    });

    let runtime = Runtime::new(EngineSettings {
        max_wasm_stack_kb: args.max_wasm_stack_kb,
        ..EngineSettings::for_app(&app)
    })?;
    let cache = ArtifactCache::new(data_dir.join("artifacts"));
    let mut http_functions = HashMap::new();
    let mut event_functions = HashMap::new();
    let mut out = std::io::stdout().lock();
    for function in app.functions.values() {
        let (loaded, outcome) = runtime.load_function(function, &cache, &services)?;
        let (how, artifact) = match outcome {
            CacheOutcome::Hit => ("loaded cached artifact", "cached"),
            CacheOutcome::Compiled => ("compiled", "compiled"),
        };
        metrics
            .function_loads
            .with(&[&function.name, artifact])
            .inc();
        let kind = match loaded {
            LoadedFunction::Http(f) => {
                http_functions.insert(function.name.clone(), Arc::new(f));
                "HTTP"
            }
            LoadedFunction::Event(f) => {
                event_functions.insert(function.name.clone(), Arc::new(f));
                "event"
            }
        };
        writeln!(out, "function {} ({kind}): {how}", function.name)?;
    }
    for trigger in &app.http_triggers {
        if !http_functions.contains_key(&trigger.function) {
            anyhow::bail!(
                "route {} invokes function `{}`, which is an event function (it exports \
                 nimbus:function/handler, not wasi:http/incoming-handler)",
                trigger.route,
                trigger.function
            );
        }
        let methods = trigger
            .methods
            .as_ref()
            .map_or("*".to_owned(), |m| m.join(","));
        let auth = match &trigger.auth {
            RouteAuth::Public => "public".to_owned(),
            RouteAuth::ApiKey => "api_key".to_owned(),
            RouteAuth::Jwt { scopes } if scopes.is_empty() => "jwt".to_owned(),
            RouteAuth::Jwt { scopes } => format!("jwt, scopes {}", scopes.join(" ")),
        };
        writeln!(
            out,
            "route {methods} {} -> {} ({auth})",
            trigger.route, trigger.function
        )?;
    }
    let policies = app
        .functions
        .values()
        .map(|f| (format!("function `{}`", f.name), &f.async_invoke))
        .chain(
            app.schedule_triggers
                .iter()
                .map(|s| (format!("schedule `{}`", s.name), &s.retry)),
        );
    for (owner, policy) in policies {
        for destination in [&policy.on_success, &policy.on_failure]
            .into_iter()
            .flatten()
        {
            if let nimbus_manifest::Destination::Function(target) = destination
                && !event_functions.contains_key(target)
            {
                anyhow::bail!(
                    "{owner} sends results to function `{target}`, which is an HTTP function; \
                     destinations must be event functions or queues"
                );
            }
        }
    }
    for function in app.functions.values() {
        for grant in &function.grants {
            if let nimbus_manifest::Grant::FunctionInvoke(target) = grant
                && !event_functions.contains_key(target)
            {
                anyhow::bail!(
                    "function `{}` is allowed to invoke `{target}`, which is an HTTP function; \
                     only event functions can be invoked (HTTP functions are called through their routes)",
                    function.name
                );
            }
        }
    }
    services.functions.publish(&event_functions);
    let async_queues: Vec<_> = app
        .functions
        .values()
        .filter(|f| event_functions.contains_key(&f.name))
        .map(nimbus_dispatch::invoke::async_queue_config)
        .collect();
    tokio
        .block_on(store.declare_queues(&async_queues))
        .context("failed to declare the async invocation queues")?;
    let mut schedule_queues = Vec::new();
    for trigger in &app.schedule_triggers {
        if !event_functions.contains_key(&trigger.function) {
            anyhow::bail!(
                "schedule `{}` invokes function `{}`, which is an HTTP function \
                 (it exports wasi:http/incoming-handler, not nimbus:function/handler)",
                trigger.name,
                trigger.function
            );
        }
        schedule_queues.push(nimbus_dispatch::schedule::schedule_queue_config(
            trigger,
            &app.functions[&trigger.function],
        ));
        writeln!(
            out,
            "schedule {} {} ({}) -> {}",
            trigger.name,
            trigger.expression.describe(),
            trigger.timezone,
            trigger.function
        )?;
    }
    tokio
        .block_on(store.declare_queues(&schedule_queues))
        .context("failed to declare the schedule queues")?;
    let mut object_queues = Vec::new();
    for trigger in &app.object_triggers {
        if !event_functions.contains_key(&trigger.function) {
            anyhow::bail!(
                "the object trigger on bucket `{}` invokes function `{}`, which is an HTTP function \
                 (it exports wasi:http/incoming-handler, not nimbus:function/handler)",
                trigger.bucket,
                trigger.function
            );
        }
        for destination in [&trigger.policy.on_success, &trigger.policy.on_failure]
            .into_iter()
            .flatten()
        {
            if let nimbus_manifest::Destination::Function(target) = destination
                && !event_functions.contains_key(target)
            {
                anyhow::bail!(
                    "the object trigger on bucket `{}` sends results to function `{target}`, which is an HTTP function; \
                     destinations must be event functions or queues",
                    trigger.bucket
                );
            }
        }
        object_queues.push(nimbus_dispatch::object::object_queue_config(
            trigger,
            &app.functions[&trigger.function],
        ));
        writeln!(out, "object {} -> {}", trigger.bucket, trigger.function)?;
    }
    tokio
        .block_on(store.declare_queues(&object_queues))
        .context("failed to declare the object trigger queues")?;
    for trigger in &app.queue_triggers {
        if !event_functions.contains_key(&trigger.function) {
            anyhow::bail!(
                "the queue trigger on `{}` invokes function `{}`, which is an HTTP function \
                 (it exports wasi:http/incoming-handler, not nimbus:function/handler)",
                trigger.queue,
                trigger.function
            );
        }
        writeln!(out, "queue {} -> {}", trigger.queue, trigger.function)?;
    }
    for trigger in &app.stream_triggers {
        if !event_functions.contains_key(&trigger.function) {
            anyhow::bail!(
                "the stream trigger on table `{}` invokes function `{}`, which is an HTTP function \
                 (it exports wasi:http/incoming-handler, not nimbus:function/handler)",
                trigger.table,
                trigger.function
            );
        }
        tokio
            .block_on(nimbus_dispatch::stream::pin_start(trigger, store.as_ref()))
            .context("failed to set where the stream trigger starts")?;
        writeln!(out, "stream {} -> {}", trigger.table, trigger.function)?;
    }
    drop(out);

    let limits = ServerLimits {
        max_connections: args.max_connections as usize,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
        max_header_bytes: args.max_header_bytes as usize,
    };
    let keys = Arc::new(
        tokio
            .block_on(ApiKeys::load(store.clone()))
            .context("failed to load the API keys")?,
    );
    let jwt = match &app.jwt {
        Some(config) => Some(
            tokio
                .block_on(JwtVerifier::new(config.clone()))
                .with_context(|| format!("[auth.jwt] of {}", app.manifest_path.display()))?,
        ),
        None => None,
    };
    let gateway = PublicGateway::new(
        &app,
        http_functions.clone(),
        Authenticator::new(keys.clone(), jwt),
        limits.body_read_timeout,
        metrics.clone(),
        tracer.clone(),
    );
    tokio.block_on(async {
        let ownership = nimbus_dispatch::ownership::Ownership::new(
            store.clone(),
            &node,
            Duration::from_millis(args.lease_ms),
        );
        // Stopped after the triggers, so leases are given up only once the
        // work under them has stopped.
        let (stop_ownership, ownership_stopped) = tokio::sync::watch::channel(false);
        let balancer = tokio::spawn(ownership.clone().run(ownership_stopped));
        let (stop_triggers, triggers_stopped) = tokio::sync::watch::channel(false);
        // Expiry is one node's job at a time (each is safe to repeat, but
        // every node scanning for the same rows is waste).
        let sweeper = tokio::spawn(ownership.clone().singleton(
            "sweep:messages",
            EXPIRE_INTERVAL,
            triggers_stopped.clone(),
            {
                let store = store.clone();
                move || expire_messages(store.clone())
            },
        ));
        let stream_sweeper = tokio::spawn(ownership.clone().singleton(
            "sweep:streams",
            STREAM_EXPIRE_INTERVAL,
            triggers_stopped.clone(),
            {
                let store = store.clone();
                move || expire_streams(store.clone())
            },
        ));
        let retention = Duration::from_secs(args.history_retention_s);
        let history_sweeper = tokio::spawn(ownership.clone().singleton(
            "sweep:history",
            history_expiry_interval(retention),
            triggers_stopped.clone(),
            {
                let store = store.clone();
                move || expire_history(store.clone(), retention)
            },
        ));
        let key_flusher = tokio::spawn(flush_key_usage_periodically(keys.clone()));
        // As often as the node renews its leases, so a report is as fresh
        // as the node's heartbeat.
        let reporter = tokio::spawn(crate::node::report_periodically(
            store.clone(),
            node.clone(),
            started_ms,
            metrics.clone(),
            Duration::from_millis(args.lease_ms / 4),
            triggers_stopped.clone(),
        ));
        let mut triggers = tokio::task::JoinSet::new();
        for trigger in &app.queue_triggers {
            triggers.spawn(nimbus_dispatch::run_queue_trigger(
                trigger.clone(),
                event_functions[&trigger.function].clone(),
                store.clone(),
                signals.clone(),
                triggers_stopped.clone(),
            ));
        }
        let stream_services = Arc::new(nimbus_dispatch::stream::StreamServices {
            tables: store.clone(),
            queues: store.clone(),
            signals: signals.clone(),
            clock: clock.clone(),
            ownership: ownership.clone(),
        });
        for trigger in &app.stream_triggers {
            triggers.spawn(nimbus_dispatch::stream::run_stream_trigger(
                trigger.clone(),
                event_functions[&trigger.function].clone(),
                stream_services.clone(),
                triggers_stopped.clone(),
            ));
        }
        for trigger in &app.object_triggers {
            triggers.spawn(nimbus_dispatch::object::run_object_trigger(
                trigger.clone(),
                event_functions[&trigger.function].clone(),
                store.clone(),
                signals.clone(),
                clock.clone(),
                triggers_stopped.clone(),
            ));
        }
        let blob_sweeper = match &objects {
            // Shared by every node: one sweeps at a time.
            nimbus_bucket::BlobStorage::S3(_) => tokio::spawn(ownership.clone().singleton(
                "sweep:blobs",
                EXPIRE_INTERVAL,
                triggers_stopped.clone(),
                {
                    let buckets = buckets.clone();
                    move || sweep_orphans(buckets.clone())
                },
            )),
            // This node's own directory: only this node can sweep it.
            nimbus_bucket::BlobStorage::Local(_) => {
                tokio::spawn(sweep_orphans_periodically(buckets.clone()))
            }
        };
        for function in app.functions.values() {
            if let Some(handler) = event_functions.get(&function.name) {
                triggers.spawn(nimbus_dispatch::invoke::run_async_invocations(
                    handler.clone(),
                    function.async_invoke.clone(),
                    function.max_concurrency,
                    store.clone(),
                    signals.clone(),
                    clock.clone(),
                    triggers_stopped.clone(),
                ));
            }
        }
        for trigger in &app.schedule_triggers {
            let run = nimbus_dispatch::schedule::ScheduleRun {
                trigger: trigger.clone(),
                function: event_functions[&trigger.function].clone(),
                queues: store.clone(),
                schedules: store.clone(),
                signals: signals.clone(),
                clock: clock.clone(),
                started_ms,
                ownership: ownership.clone(),
                tracer: tracer.clone(),
            };
            triggers.spawn(nimbus_dispatch::schedule::run_schedule(
                run,
                triggers_stopped.clone(),
            ));
        }
        let api = nimbus_gateway::api::ApiState {
            queues: store.clone(),
            buckets,
            waiters: signals,
            functions: Arc::new(nimbus_gateway::api::Functions {
                event: event_functions.clone(),
                http: http_functions.keys().cloned().collect(),
            }),
            admin_token: nimbus_gateway::AdminToken::new(&admin_token),
            keys: keys.clone(),
            metrics: metrics.clone(),
            secrets,
            history_store: store.clone(),
            history,
            tables: store.clone(),
            table_configs,
            test_clock,
            clock: clock.clone(),
            schedules: Arc::new(app.schedule_triggers.clone()),
            schedule_store: store.clone(),
            store,
        };
        let signalled = shutdown_signal()?;
        let public = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to bind the gateway to {}", args.listen))?;
        let admin = TcpListener::bind(args.admin_listen)
            .await
            .with_context(|| {
                format!("failed to bind the admin listener to {}", args.admin_listen)
            })?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "gateway listening on http://{}", public.local_addr()?)?;
            writeln!(out, "admin listening on http://{}", admin.local_addr()?)?;
            out.flush()?;
        }
        tracing::info!(app = %app.name, node = %node, "serving");
        let shutdown = async {
            signalled.await;
            // Queue workers stop taking new batches at once; the ones in
            // flight finish (or are cut off with the rest after the grace).
            let _ = stop_triggers.send(true);
        };
        let drain = nimbus_gateway::run(public, admin, gateway, api, limits, shutdown).await;
        key_flusher.abort();
        if let Err(e) = keys.flush().await {
            tracing::error!("failed to record API key quota use at shutdown: {e}");
        }
        let _ = tokio::time::timeout(limits.shutdown_grace, async {
            while triggers.join_next().await.is_some() {}
        })
        .await;
        let _ = stop_ownership.send(true);
        let _ = tokio::time::timeout(limits.shutdown_grace, balancer).await;
        reporter.abort();
        sweeper.abort();
        stream_sweeper.abort();
        blob_sweeper.abort();
        if let Some(exporter) = &exporter {
            // Spans of the last requests go out before the process ends.
            let _ = tokio::time::timeout(TRACE_FLUSH_TIMEOUT, exporter.flush()).await;
        }
        history_sweeper.abort();
        match drain {
            Drain::Complete => tracing::info!("stopped"),
            Drain::TimedOut => {
                tracing::warn!("stopped with requests still in flight after the grace period")
            }
        }
        anyhow::Ok(())
    })?;
    // Cancel whatever the grace period left running (guests yield at every
    // epoch tick, so this is prompt) while the epoch ticker still runs; only
    // then stop the engine.
    tokio.shutdown_timeout(SHUTDOWN_CANCEL_TIMEOUT);
    drop(runtime);
    Ok(())
}

/// Where object bytes live in the data directory.
const BUCKETS_DIR: &str = "buckets";

/// Where `--objects` puts object bytes: `s3://BUCKET[/PREFIX]` with the
/// AWS settings from the environment, `file:PATH`, or by default the data
/// directory.
fn blob_storage(
    objects: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<nimbus_bucket::BlobStorage, String> {
    use nimbus_bucket::{BlobStorage, S3Config, S3Location};
    let Some(text) = objects else {
        return Ok(BlobStorage::Local(data_dir.join(BUCKETS_DIR)));
    };
    if let Some(path) = text.strip_prefix("file:") {
        if path.is_empty() {
            return Err("`file:` needs a path, as in file:./objects".into());
        }
        return Ok(BlobStorage::Local(PathBuf::from(path)));
    }
    if text.starts_with("s3://") {
        return Ok(BlobStorage::S3(Box::new(S3Config::from_env(
            S3Location::parse(text)?,
        ))));
    }
    // Only the scheme: the rest may hold something secret.
    let scheme = text.split_once(':').map_or("", |(scheme, _)| scheme);
    Err(format!(
        "objects live at s3://BUCKET[/PREFIX] or file:PATH, not a `{scheme}:` location"
    ))
}

/// Removes blobs no object refers to (uploads cut off before their commit),
/// once they are older than `ORPHAN_GRACE`.
async fn sweep_orphans_periodically(buckets: Arc<nimbus_bucket::Buckets>) {
    let mut tick = tokio::time::interval(EXPIRE_INTERVAL);
    loop {
        tick.tick().await;
        sweep_orphans(buckets.clone()).await;
    }
}

async fn sweep_orphans(buckets: Arc<nimbus_bucket::Buckets>) {
    if let Err(e) = buckets.sweep_orphans(nimbus_bucket::ORPHAN_GRACE).await {
        tracing::warn!("failed to sweep orphaned blobs: {e}");
    }
}

/// The store's file in the data directory.
const DB_FILE: &str = "nimbus.db";

/// Opens the store `--store` names (the embedded one in the data directory
/// by default) and declares the app's queues and tables in it.
async fn open_store(
    app: &App,
    location: Option<StoreLocation>,
    data_dir: &std::path::Path,
    durability: StoreDurability,
    clock: Arc<dyn Clock>,
    test_clock: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    let location = location.unwrap_or_else(|| StoreLocation::Sqlite(data_dir.join(DB_FILE)));
    let relaxed = matches!(durability, StoreDurability::Relaxed);
    let store: Arc<dyn Store> = match location {
        StoreLocation::Sqlite(path) => {
            let options = SqliteOptions {
                path,
                durability: if relaxed {
                    Durability::RelaxedMayLoseRecentWrites
                } else {
                    Durability::Fsync
                },
            };
            let store = SqliteStore::open(&options, clock)
                .with_context(|| format!("failed to open the store {}", options.path.display()))?;
            Arc::new(store)
        }
        StoreLocation::Postgres(url) => {
            let options = PgOptions {
                url,
                relaxed_durability: relaxed,
                pool_size: nimbus_store_postgres::DEFAULT_POOL_SIZE,
            };
            // The database's clock, unless a test clock stands in for it.
            let clock = test_clock.then_some(clock);
            let store = PgStore::connect(&options, clock)
                .await
                .context("failed to open the PostgreSQL store")?;
            Arc::new(store)
        }
    };
    let queues: Vec<QueueConfig> = app
        .queues
        .values()
        .map(|q| QueueConfig {
            name: q.name.clone(),
            visibility_timeout_ms: q.visibility_timeout_ms,
            retention_ms: q.retention_ms,
            delay_ms: q.delay_ms,
            max_message_bytes: q.max_message_bytes as usize,
            dedup_window_ms: q.dedup_window_ms,
            max_receive_count: q.max_receive_count,
            dead_letter_queue: q.dead_letter_queue.clone(),
        })
        .collect();
    store
        .declare_queues(&queues)
        .await
        .context("failed to declare the app's queues")?;
    let tables: Vec<TableConfig> = app
        .tables
        .values()
        .map(|t| TableConfig {
            name: t.name.clone(),
            partition_key: t.partition_key.clone(),
            sort_key: t.sort_key.clone(),
            stream: t.stream.as_deref().and_then(StreamView::parse),
            stream_retention_ms: t.stream_retention_s * 1000,
            max_item_bytes: t.max_item_bytes as usize,
        })
        .collect();
    store
        .declare_tables(&tables)
        .await
        .context("failed to declare the app's tables")?;
    Ok(store)
}

/// Longest wait at shutdown for the last spans to be exported.
const TRACE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How often quota use of API keys is added to the store (a crash forgets
/// at most this much use) and keys are read back.
const KEY_USAGE_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Adds this node's quota use to the store each second and reads the keys
/// back, so keys created or revoked on another node (and its use) count
/// here within about a second.
async fn flush_key_usage_periodically(keys: Arc<ApiKeys>) {
    let mut tick = tokio::time::interval(KEY_USAGE_FLUSH_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = keys.flush().await {
            tracing::warn!("failed to record API key quota use: {e}");
        }
        if let Err(e) = keys.refresh().await {
            tracing::warn!("failed to read API keys from the store: {e}");
        }
    }
}

async fn expire_messages(store: Arc<dyn Store>) {
    match store.expire().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("expired {n} messages past their queue's retention"),
        Err(e) => tracing::warn!("failed to expire old messages: {e}"),
    }
}

/// How often change records past their table's stream retention are
/// removed; with the test clock this is how retention is observed.
const STREAM_EXPIRE_INTERVAL: Duration = Duration::from_secs(1);

async fn expire_streams(store: Arc<dyn Store>) {
    match store.expire_streams().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!("removed {n} change records past their stream retention"),
        Err(e) => tracing::warn!("failed to remove old change records: {e}"),
    }
}

/// How often invocation records past `retention` (by the store's clock)
/// and past `MAX_HISTORY_RECORDS` are removed: at least every minute and
/// twice per retention, so a record outlives its retention by at most half
/// of it.
fn history_expiry_interval(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_millis(250), EXPIRE_INTERVAL)
}

async fn expire_history(store: Arc<dyn Store>, retention: Duration) {
    let retention_ms = retention.as_millis() as u64;
    match store
        .expire_invocations(retention_ms, nimbus_engine::MAX_HISTORY_RECORDS)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::debug!("removed {n} invocation records past their retention"),
        Err(e) => tracing::warn!("failed to remove old invocation records: {e}"),
    }
    if let Err(e) = store
        .forget_nodes(crate::node::FORGET_AFTER.as_millis() as u64)
        .await
    {
        tracing::warn!("failed to forget the reports of nodes long gone: {e}");
    }
}

/// How often a node on a shared store measures its clock against the
/// store's.
const CLOCK_ALIGN_INTERVAL: Duration = Duration::from_secs(30);
/// A clock further off the store's than this is worth a warning.
const CLOCK_SKEW_WARNING_MS: i64 = 1_000;

/// Reads the store's clock and moves `clock` to agree with it.
async fn align_clock(
    clock: &nimbus_store::AlignedClock,
    store: &dyn Store,
) -> Result<(), nimbus_store::StoreError> {
    let sent = SystemClock.now_ms();
    let reference = store.now_ms().await?;
    clock.align(reference, sent, SystemClock.now_ms());
    let offset = clock.offset_ms();
    if offset.abs() > CLOCK_SKEW_WARNING_MS {
        tracing::warn!(
            offset_ms = offset,
            "this machine's clock is off the store's; judging time by the store's"
        );
    }
    Ok(())
}

async fn align_clock_periodically(clock: Arc<nimbus_store::AlignedClock>, store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(CLOCK_ALIGN_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = align_clock(&clock, store.as_ref()).await {
            tracing::debug!("could not read the store's clock: {e}");
        }
    }
}

/// Shortest admin token accepted from the command line.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The admin token kept in the data directory, created (mode 0600) with 244
/// random bits on first start.
fn stored_admin_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated the admin token");
    Ok(token)
}

/// Per user, never inside the app's directory: compiled artifacts are native
/// code, and a cloned repository must not be able to plant them.
fn default_data_dir(app: &str) -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(base.join("nimbus").join(app))
}

/// Starts listening for SIGINT and SIGTERM now and resolves on the first.
/// Called before the listeners are announced: until a handler is registered
/// a signal has its default, fatal effect, so a supervisor (or a test) that
/// signals as soon as it sees the addresses would kill the process instead
/// of draining it.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT"),
            _ = terminate.recv() => tracing::info!("received SIGTERM"),
        }
    })
}
