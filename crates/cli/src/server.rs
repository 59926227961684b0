//! The server: what outlives every version of the app. It opens the store
//! (and aligns this node's clock with a shared one), the secret vault, the
//! object storage, the engine with its artifact cache, metrics, tracing and
//! the invocation history; `serve` binds the listeners, runs the node's
//! singleton work (sweepers, the node report) under lease ownership, starts
//! a [`Deployment`]'s triggers and stops it all in order at SIGINT or
//! SIGTERM.

use crate::deployment::Deployment;
use crate::serving::{LocalApp, Serving};
use crate::up::{StoreDurability, UpArgs};
use anyhow::Context as _;
use nimbus_engine::{ArtifactCache, EngineSettings, Runtime};
use nimbus_gateway::auth::ApiKeys;
use nimbus_gateway::{Drain, ServerLimits};
use nimbus_manifest::App;
use nimbus_store::{Clock, Store, SystemClock};
use nimbus_store_postgres::{PgOptions, PgStore};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What outlives every version of the app.
pub struct Server {
    pub node: String,
    /// Where this node keeps its state (artifacts, the embedded store).
    pub data_dir: PathBuf,
    pub store: Arc<dyn Store>,
    /// The store's clock (on a shared store, this node's clock aligned to
    /// the database's).
    pub clock: Arc<dyn Clock>,
    /// Set only by `--test-clock`.
    test_clock: Option<nimbus_store::ManualClock>,
    /// When this process started, by the store's clock, read before any
    /// listener is up.
    pub started_ms: u64,
    pub secrets: Arc<nimbus_vault::Vault>,
    pub metrics: Arc<nimbus_metrics::Metrics>,
    objects: nimbus_bucket::BlobStorage,
    pub buckets: Arc<nimbus_bucket::Buckets>,
    pub tracer: nimbus_trace::Tracer,
    exporter: Option<nimbus_trace::Exporter>,
    pub history: Arc<nimbus_engine::History>,
    pub runtime: Runtime,
    /// The largest `memory_mb` a function may ask for (`--max-function-memory-mb`).
    pub max_function_memory_mb: u32,
    pub cache: ArtifactCache,
    pub(crate) keys: Arc<ApiKeys>,
    pub ownership: Arc<nimbus_dispatch::ownership::Ownership>,
    admin_token: String,
    pub(crate) limits: ServerLimits,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    history_retention: Duration,
    /// `--history-max-records`.
    history_max_records: u64,
    lease: Duration,
    /// The S3 and SQS endpoints asked for.
    endpoints: crate::endpoints::EndpointSettings,
    /// The keys those endpoints accept, sealed in the vault.
    pub(crate) access_keys: Arc<nimbus_access::AccessKeys>,
}

impl Server {
    /// Opens everything `args` names for the app `app` (whose name picks
    /// the default data directory and secret key, and whose buckets and
    /// function limits shape the object storage and the instance pool).
    pub async fn open(args: &UpArgs, app: &App) -> anyhow::Result<Server> {
        // The engine's instance pool (a guard page per fiber stack: a
        // thousand `mprotect` calls by default) needs nothing else opened
        // here, so it is built on a thread of its own while the store, vault
        // and buckets open. Sized by the server's settings, not one
        // version's functions: every version deployed later runs in the
        // same pool.
        let settings = EngineSettings {
            max_memory_mb: args.max_function_memory_mb,
            pooled_instances: args.pool_instances,
            max_wasm_stack_kb: args.max_wasm_stack_kb,
        };
        let engine = std::thread::Builder::new()
            .name("nimbus-engine-init".into())
            .spawn(move || Runtime::new(settings))
            .context("failed to start the engine's creation")?;
        let data_dir = match args.data_dir.clone() {
            Some(dir) => dir,
            None => default_data_dir(&app.name)?,
        };
        std::fs::create_dir_all(&data_dir).with_context(|| {
            format!("failed to create the data directory {}", data_dir.display())
        })?;
        let node = crate::node::resolve(args.node_id.as_deref(), &data_dir)?;
        let admin_token = match &args.admin_token {
            Some(token) if token.len() >= MIN_ADMIN_TOKEN_LEN => token.clone(),
            Some(_) => {
                anyhow::bail!("--admin-token must be at least {MIN_ADMIN_TOKEN_LEN} characters")
            }
            None => stored_admin_token(&data_dir)?,
        };
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
        let store = open_store(
            location,
            &data_dir,
            args.store_durability,
            clock.clone(),
            test_clock.is_some(),
        )
        .await?;
        // On a shared store the database's clock judges leases and
        // retention; this node's clock is moved to agree with it, so event
        // ages and schedule due times are judged the same way on every node.
        let clock: Arc<dyn Clock> = if shared_store && test_clock.is_none() {
            let aligned = Arc::new(nimbus_store::AlignedClock::default());
            align_clock(&aligned, store.as_ref())
                .await
                .context("failed to read the store's clock")?;
            tokio::spawn(align_clock_periodically(aligned.clone(), store.clone()));
            aligned
        } else {
            clock
        };
        // Before any listener is up, so the test clock cannot have moved yet.
        let started_ms = clock.now_ms();
        let secrets = crate::secret::open_vault(
            args.secret_key_file.as_deref(),
            &app.name,
            store.clone(),
            &store.location(),
        )
        .await?;
        let metrics = Arc::new(nimbus_metrics::Metrics::default());
        metrics.node_info.with(&[&node]).set(1);
        let objects = blob_storage(args.objects.as_deref(), &data_dir)
            .map_err(|e| anyhow::anyhow!("--objects: {e}"))?;
        let buckets = Arc::new(
            nimbus_bucket::Buckets::open_in(app, &objects, store.clone())
                .await
                .context("failed to open the buckets")?
                .with_metrics(metrics.clone())
                .with_uploader(&node),
        );
        if !app.buckets.is_empty() {
            tracing::info!("object bytes in {}", buckets.storage());
        }
        // Unreferenced blobs left by uploads cut off before their commit go
        // now, whatever their age, unless an upload registered in the store
        // is still writing them (on S3, another node's: this node's own
        // registrations are its dead predecessor's and end here).
        match buckets.sweep_orphans_at_start().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} orphaned blobs left by interrupted uploads"),
            Err(e) => tracing::warn!("failed to sweep orphaned blobs: {e}"),
        }
        store.observe(metrics.clone());
        let (tracer, exporter) = match &args.otlp_endpoint {
            Some(endpoint) => {
                let (tracer, exporter) = nimbus_trace::spawn_exporter(endpoint, &app.name);
                tracing::info!(%endpoint, "exporting traces over OTLP/HTTP");
                (tracer, Some(exporter))
            }
            None => (nimbus_trace::Tracer::disabled(), None),
        };
        let history = nimbus_engine::History::start(store.clone(), metrics.clone(), &node);
        let runtime = engine
            .join()
            .map_err(|_| anyhow::anyhow!("creating the wasmtime engine panicked"))??;
        let cache = ArtifactCache::new(data_dir.join("artifacts"));
        let keys = Arc::new(
            ApiKeys::load(store.clone())
                .await
                .context("failed to load the API keys")?,
        );
        let lease = Duration::from_millis(args.lease_ms);
        // The test clock jumps: a live node's leases must outlast any jump.
        let store_ttl = if test_clock.is_some() {
            TEST_CLOCK_LEASE_TTL
        } else {
            lease
        };
        let ownership = nimbus_dispatch::ownership::Ownership::with_store_ttl(
            store.clone(),
            &node,
            lease,
            store_ttl,
        );
        let access_keys = Arc::new(nimbus_access::AccessKeys::new(secrets.clone()));
        let endpoints = crate::endpoints::EndpointSettings::new(
            args.s3_listen,
            args.s3_domain.clone(),
            args.sqs_listen,
            args.aws_tls_cert.clone().zip(args.aws_tls_key.clone()),
        )?;
        Ok(Server {
            data_dir,
            node,
            store,
            clock,
            test_clock,
            started_ms,
            secrets,
            metrics,
            objects,
            buckets,
            tracer,
            exporter,
            history,
            runtime,
            max_function_memory_mb: args.max_function_memory_mb,
            cache,
            keys,
            ownership,
            admin_token,
            limits: ServerLimits {
                max_connections: args.max_connections as usize,
                header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
                body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
                shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
                max_header_bytes: args.max_header_bytes as usize,
            },
            listen: args.listen,
            admin_listen: args.admin_listen,
            history_retention: Duration::from_secs(args.history_retention_s),
            history_max_records: args.history_max_records,
            lease,
            endpoints,
            access_keys,
        })
    }

    /// Serves `first` (and the deployments that replace it) until SIGINT or
    /// SIGTERM, then stops in order: listeners drain, triggers finish their
    /// work in flight, and leases are given back once the work under them
    /// has stopped.
    pub async fn serve(
        self: Arc<Self>,
        local: Option<LocalApp>,
        first: Deployment,
        on_serving: Option<crate::up::OnServing>,
    ) -> anyhow::Result<()> {
        let store = &self.store;
        // Stopped after the triggers, so leases are given up only once the
        // work under them has stopped.
        let (stop_ownership, ownership_stopped) = tokio::sync::watch::channel(false);
        let balancer = tokio::spawn(self.ownership.clone().run(ownership_stopped));
        let (stop_node, node_stopped) = tokio::sync::watch::channel(false);
        let key_flusher = tokio::spawn(flush_key_usage_periodically(self.keys.clone()));
        // As often as the node renews its leases, so a report is as fresh
        // as the node's heartbeat.
        let reporter = tokio::spawn(crate::node::report_periodically(
            store.clone(),
            self.node.clone(),
            self.started_ms,
            self.metrics.clone(),
            self.lease / 4,
            node_stopped.clone(),
        ));
        let app_name = first.app.name.clone();
        let serving = Serving::start(self.clone(), local, first);
        let singletons = self.start_singletons(&node_stopped, serving.view());
        if let Some(on_serving) = on_serving {
            on_serving(&self, serving.clone(), node_stopped.clone());
        }
        let follower = tokio::spawn(serving.clone().follow(node_stopped));
        let api = nimbus_gateway::api::ApiState {
            queues: store.clone(),
            waiters: store.signals().clone(),
            app: serving.view(),
            admin_token: nimbus_gateway::AdminToken::new(&self.admin_token),
            keys: self.keys.clone(),
            metrics: self.metrics.clone(),
            secrets: self.secrets.clone(),
            history_store: store.clone(),
            history: self.history.clone(),
            tables: store.clone(),
            test_clock: self.test_clock.clone(),
            clock: self.clock.clone(),
            schedule_store: store.clone(),
            store: store.clone(),
            deployer: Some(serving.clone()),
            access_keys: self.access_keys.clone(),
        };
        let signalled = shutdown_signal()?;
        let public = TcpListener::bind(self.listen)
            .await
            .with_context(|| format!("failed to bind the gateway to {}", self.listen))?;
        let admin = TcpListener::bind(self.admin_listen)
            .await
            .with_context(|| {
                format!("failed to bind the admin listener to {}", self.admin_listen)
            })?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "gateway listening on http://{}", public.local_addr()?)?;
            writeln!(out, "admin listening on http://{}", admin.local_addr()?)?;
            out.flush()?;
        }
        let endpoints = self
            .endpoints
            .bind(&serving, store, &self.access_keys)
            .await?;
        tracing::info!(app = %app_name, node = %self.node, "serving");
        let limits = self.limits;
        // The triggers' stop, started at the signal alongside the drain of
        // the listeners, and awaited once they have drained.
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
        let shutdown = {
            let serving = serving.clone();
            async move {
                signalled.await;
                // No deployment changes from here on; queue workers stop
                // taking new batches at once, and the ones in flight finish
                // (or are cut off with the rest after the grace).
                let _ = stop_node.send(true);
                let stopping =
                    tokio::spawn(async move { serving.stop(limits.shutdown_grace).await });
                let _ = stopping_tx.send(stopping);
            }
        };
        let drain = nimbus_gateway::run(
            public,
            admin,
            serving.gateway(),
            api,
            endpoints,
            limits,
            shutdown,
        )
        .await;
        let stopping = stopping_rx.await.ok();
        let _ = follower.await;
        key_flusher.abort();
        if let Err(e) = self.keys.flush().await {
            tracing::error!("failed to record API key quota use at shutdown: {e}");
        }
        if let Some(stopping) = stopping {
            let _ = stopping.await;
        }
        // Uploads cut off by the drain are given up in tasks of their own
        // (an S3 multipart upload aborted, or its parts stay in the bucket);
        // the exit would cut those off too.
        let _ = tokio::time::timeout(limits.shutdown_grace, self.buckets.cleanups_settled()).await;
        let _ = stop_ownership.send(true);
        let _ = tokio::time::timeout(limits.shutdown_grace, balancer).await;
        reporter.abort();
        for singleton in singletons {
            singleton.abort();
        }
        if let Some(exporter) = &self.exporter {
            // Spans of the last requests go out before the process ends.
            let _ = tokio::time::timeout(TRACE_FLUSH_TIMEOUT, exporter.flush()).await;
        }
        match drain {
            Drain::Complete => tracing::info!("stopped"),
            Drain::TimedOut => {
                tracing::warn!("stopped with requests still in flight after the grace period")
            }
        }
        Ok(())
    }

    /// Starts the node's share of the sweeps: expiry of messages, change
    /// records and invocation records is one node's job at a time (each is
    /// safe to repeat, but every node scanning for the same rows is waste),
    /// and so is the orphan sweep of shared (S3) object storage; a local
    /// directory only this node can sweep.
    /// The orphan sweep covers the buckets of the version served when it
    /// runs (`view`).
    fn start_singletons(
        &self,
        stopped: &tokio::sync::watch::Receiver<bool>,
        view: Arc<nimbus_gateway::Live<nimbus_gateway::api::AppView>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let ownership = &self.ownership;
        let store = &self.store;
        let retention = self.history_retention;
        let max_records = self.history_max_records;
        let mut tasks = vec![
            tokio::spawn(ownership.clone().singleton(
                "sweep:messages",
                EXPIRE_INTERVAL,
                stopped.clone(),
                {
                    let store = store.clone();
                    move || expire_messages(store.clone())
                },
            )),
            tokio::spawn(ownership.clone().singleton(
                "sweep:streams",
                STREAM_EXPIRE_INTERVAL,
                stopped.clone(),
                {
                    let store = store.clone();
                    move || expire_streams(store.clone())
                },
            )),
            tokio::spawn(ownership.clone().singleton(
                "sweep:history",
                history_expiry_interval(retention),
                stopped.clone(),
                {
                    let store = store.clone();
                    move || expire_history(store.clone(), retention, max_records)
                },
            )),
        ];
        tasks.push(match &self.objects {
            // Shared by every node: one sweeps at a time.
            nimbus_bucket::BlobStorage::S3(_) => tokio::spawn(ownership.clone().singleton(
                "sweep:blobs",
                EXPIRE_INTERVAL,
                stopped.clone(),
                {
                    let view = view.clone();
                    move || sweep_orphans(view.get().buckets.clone())
                },
            )),
            // This node's own directory: only this node can sweep it.
            nimbus_bucket::BlobStorage::Local(_) => tokio::spawn(sweep_orphans_periodically(view)),
        });
        tasks
    }
}

/// Which backend holds the state, from `--store`.
pub(crate) enum StoreLocation {
    Sqlite(PathBuf),
    /// The URL as given; it may hold a password, so it is never printed.
    Postgres(String),
}

impl StoreLocation {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
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

/// How long leases last by the store's clock under `--test-clock`: longer
/// than any jump a test makes (a hundred years).
const TEST_CLOCK_LEASE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How often messages past their retention (and stale dedup ids) are swept.
const EXPIRE_INTERVAL: Duration = Duration::from_secs(60);

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
async fn sweep_orphans_periodically(view: Arc<nimbus_gateway::Live<nimbus_gateway::api::AppView>>) {
    let mut tick = tokio::time::interval(EXPIRE_INTERVAL);
    loop {
        tick.tick().await;
        sweep_orphans(view.get().buckets.clone()).await;
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
/// by default).
async fn open_store(
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

async fn expire_history(store: Arc<dyn Store>, retention: Duration, max_records: u64) {
    let retention_ms = retention.as_millis() as u64;
    match store.expire_invocations(retention_ms, max_records).await {
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
