//! `nimbus up`: the one-command start. Loads the app, opens a [`Server`]
//! (store, vault, engine, listeners), deploys the app into it and serves
//! until SIGINT or SIGTERM.

use crate::deployment::Deployment;
use crate::server::Server;
use crate::serving::{LocalApp, Serving, deployment_digest};
use anyhow::Context as _;
use clap::Args;
use nimbus_manifest::App;
use nimbus_store::deployment::NewDeployment;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long cancelling leftover tasks may take after the grace period.
const SHUTDOWN_CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct UpArgs {
    /// The app's manifest.
    #[arg(default_value = "nimbus.toml")]
    pub(crate) manifest: PathBuf,
    /// Run the functions' build commands first.
    #[arg(long)]
    pub(crate) build: bool,
    /// Address of the public gateway (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    pub(crate) listen: SocketAddr,
    /// Address of the admin listener (health, readiness).
    #[arg(long, default_value = "127.0.0.1:3001", value_name = "ADDR")]
    pub(crate) admin_listen: SocketAddr,
    /// Serve the S3 API over the app's buckets on this address (off unless
    /// given; requests are signed with `nimbus access-key` keys).
    #[arg(long, value_name = "ADDR")]
    pub(crate) s3_listen: Option<SocketAddr>,
    /// The S3 endpoint's domain: requests to `BUCKET.DOMAIN` name their
    /// bucket in the host (virtual-hosted style), besides path style.
    #[arg(long, value_name = "DOMAIN", requires = "s3_listen")]
    pub(crate) s3_domain: Option<String>,
    /// Serve the SQS API over the app's queues on this address (off unless
    /// given; requests are signed with `nimbus access-key` keys).
    #[arg(long, value_name = "ADDR")]
    pub(crate) sqs_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) the S3 and SQS endpoints serve HTTPS with;
    /// without it they speak plain HTTP.
    #[arg(long, value_name = "PEM", requires = "aws_tls_key")]
    pub(crate) aws_tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "aws_tls_cert")]
    pub(crate) aws_tls_key: Option<PathBuf>,
    /// Where Nimbus keeps its state, such as compiled artifacts
    /// [default: $XDG_DATA_HOME/nimbus/APP, else ~/.local/share/nimbus/APP].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// How long shutdown waits for in-flight requests, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub(crate) shutdown_grace_ms: u64,
    /// Wasm stack each invocation may use, in KiB (for every function: the
    /// engine sets it once); deeper recursion traps and the request gets 500.
    #[arg(long, default_value_t = nimbus_engine::DEFAULT_MAX_WASM_STACK_KB, value_name = "KIB", value_parser = clap::value_parser!(u32).range(64..=65_536))]
    pub(crate) max_wasm_stack_kb: u32,
    /// Instance slots in the engine's pool, shared by every version this
    /// server runs: an invocation that finds every slot taken fails, so keep
    /// it above the sum of the functions' `max_concurrency`. Slots reserve
    /// address space, not memory, until used.
    #[arg(long, default_value_t = nimbus_engine::MAX_POOLED_INSTANCES, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=nimbus_engine::MAX_POOLED_INSTANCES as i64))]
    pub(crate) pool_instances: u32,
    /// Largest `memory_mb` a function may ask for; a deployment asking more
    /// is refused. Every pool slot can grow to this.
    #[arg(long, default_value_t = nimbus_manifest::limits::MEMORY_MB.range.1 as u32, value_name = "MB", value_parser = clap::value_parser!(u32).range(1..=nimbus_manifest::limits::MEMORY_MB.range.1 as i64))]
    pub(crate) max_function_memory_mb: u32,
    /// Export traces over OTLP/HTTP (JSON) to this endpoint, e.g.
    /// `http://127.0.0.1:4318` (spans go to ENDPOINT/v1/traces). Without
    /// it, nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// Open connections each listener accepts at once.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
    /// Time a client has to send a request's headers, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_read_timeout_ms: u64,
    /// The token `/v1` requests must carry [default: generated on first start
    /// into DATA_DIR/admin-token, readable only by this user].
    #[arg(
        long,
        env = "NIMBUS_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) admin_token: Option<String>,
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
    pub(crate) store: Option<String>,
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
    pub(crate) objects: Option<String>,
    /// `fsync`: acknowledge writes only once they survive power loss.
    /// `relaxed`: faster, but the last writes before a power loss or OS crash
    /// (on PostgreSQL: a database crash) can be lost (logged as a warning at
    /// startup; on PostgreSQL it is `synchronous_commit = off`).
    #[arg(long, value_enum, default_value_t = StoreDurability::Fsync)]
    pub(crate) store_durability: StoreDurability,
    /// The key that seals secrets, kept apart from the data directory;
    /// created (0600) on first start if missing
    /// [default: $XDG_CONFIG_HOME/nimbus/APP/secrets.key, else ~/.config/nimbus/APP/secrets.key].
    #[arg(long, env = "NIMBUS_SECRET_KEY_FILE", value_name = "PATH")]
    pub(crate) secret_key_file: Option<PathBuf>,
    /// Largest request head (request line and headers) in bytes; a larger
    /// one gets 431.
    #[arg(long, default_value_t = 65_536, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(8_192..=1_048_576))]
    pub(crate) max_header_bytes: u32,
    /// Time a client has to send a request's body, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_read_timeout_ms: u64,
    /// How long invocation records (and their captured output) are kept, in
    /// seconds; at most `--history-max-records` are kept whatever this says.
    #[arg(long, default_value_t = 86_400, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub(crate) history_retention_s: u64,
    /// Invocation records kept at most, whatever the retention: the oldest
    /// go first (each holds up to 64 KiB of captured output).
    #[arg(long, default_value_t = nimbus_engine::MAX_HISTORY_RECORDS, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub(crate) history_max_records: u64,
    /// This node's id, in its logs and leases; nodes sharing a store need
    /// different ones [default: kept in the data directory, generated on
    /// first start].
    #[arg(long, env = "NIMBUS_NODE_ID", value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// How long a node owns singleton work (a stream lane) without renewing,
    /// in milliseconds: work of a node that stops renewing moves to another
    /// node within this.
    #[arg(long, env = "NIMBUS_LEASE_MS", default_value_t = nimbus_dispatch::ownership::DEFAULT_LEASE.as_millis() as u64, value_name = "MS", value_parser = clap::value_parser!(u64).range(1_000..=600_000))]
    pub(crate) lease_ms: u64,
    /// Test seam: time (for the store, schedules and event ages) stands still
    /// from the start, moving only when `POST /v1/test/clock` advances it.
    /// Hidden: never for production use.
    #[arg(long, hide = true)]
    pub(crate) test_clock: bool,
    /// Test seam: with `--test-clock`, where the clock starts (ms since the
    /// epoch) instead of the system time, so a restart can resume where a
    /// test left off. Hidden: never for production use.
    #[arg(long, hide = true, value_name = "MS", requires = "test_clock")]
    pub(crate) test_clock_start_ms: Option<u64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum StoreDurability {
    Fsync,
    Relaxed,
}

/// What `nimbus dev` adds to a running server: called once the first
/// deployment serves, with the server, what it serves and the signal that
/// the node is stopping.
pub(crate) type OnServing =
    Box<dyn FnOnce(&Arc<Server>, Arc<Serving>, tokio::sync::watch::Receiver<bool>) + Send>;

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    run_with(args, None)
}

/// `nimbus up`, with `on_serving` run once the first deployment serves.
pub(crate) fn run_with(args: UpArgs, on_serving: Option<OnServing>) -> anyhow::Result<()> {
    let app = App::load(&args.manifest)?;
    if args.build {
        crate::build::build_app(&app)?;
    }
    app.check_components()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let server = Arc::new(tokio.block_on(Server::open(&args, &app))?);
    let result = tokio.block_on(async {
        let (local, first) = deploy_local(&server, app).await?;
        server.clone().serve(Some(local), first, on_serving).await
    });
    // Cancel whatever the grace period left running (guests yield at every
    // epoch tick, so this is prompt) while the epoch ticker still runs; only
    // then stop the engine.
    tokio.shutdown_timeout(SHUTDOWN_CANCEL_TIMEOUT);
    drop(server);
    result
}

/// Where a node keeps the digest of the local version it last started with.
const STARTED_WITH_FILE: &str = "started-with";

/// Records the local app as a deployment and prepares what this node is to
/// serve first: the local app, made the active deployment, when the store
/// has none active, or the manifest changed since this node last started
/// (someone edited it: that is what they want served), or the store has
/// never seen this version (a node's first start, or a node pointed at
/// another store). Otherwise (a
/// node restarting on the manifest it had, or a new node given a version
/// the store has served before) the store's active deployment is served,
/// with a line saying so: a restart never rolls back a `nimbus deploy`.
async fn deploy_local(server: &Server, app: App) -> anyhow::Result<(LocalApp, Deployment)> {
    let store = &server.store;
    let manifest_text = std::fs::read_to_string(&app.manifest_path)
        .with_context(|| format!("failed to read {}", app.manifest_path.display()))?;
    let staged = read_local(&app, manifest_text)?;
    let digest = deployment_digest(&staged.manifest, &staged.components);
    let active = store
        .active_deployment_id()
        .await
        .context("failed to read the active deployment")?;
    // A restart on the version already active (the common case) writes
    // nothing: the components are kept (the active deployment names them,
    // and pruning keeps the active one), the deployment exists, and
    // activating it again would only move its `activated` time and signal
    // every node to reload what they serve. Each of those writes was a
    // commit with an fsync before the first request could be served
    // (issue 17).
    let already_active = match active {
        Some(id) => store
            .deployment(id)
            .await
            .context("failed to read the active deployment")?
            .filter(|d| d.digest == digest),
        None => None,
    };
    let (record, new) = match already_active {
        Some(record) => (record, false),
        None => {
            put_missing_components(store.as_ref(), &app, &staged).await?;
            let newest = store
                .deployments(1)
                .await
                .context("failed to list the deployments")?;
            let record = store
                .create_deployment(NewDeployment {
                    manifest: staged.manifest.clone(),
                    components: staged.components.clone(),
                    digest: digest.clone(),
                })
                .await
                .context("failed to record the deployment")?;
            let new = newest.first().is_none_or(|n| n.id < record.id);
            (record, new)
        }
    };
    let bytes = staged.bytes;
    let started_with_path = server.data_dir.join(STARTED_WITH_FILE);
    let started_with = std::fs::read_to_string(&started_with_path)
        .ok()
        .map(|d| d.trim().to_owned());
    // `started-with` belongs to the data directory, not to the store: a
    // node pointed at another store may have started with this version
    // elsewhere, so a version this store has never seen goes live whatever
    // the file says.
    let serve_local = match active {
        None => true,
        Some(active) if active == record.id => true,
        Some(_) => new || started_with.as_ref().is_some_and(|last| *last != digest),
    };
    let local = LocalApp {
        app: app.clone(),
        digest: digest.clone(),
    };
    let mut out = std::io::stdout().lock();
    let first = match active {
        Some(active) if !serve_local => {
            writeln!(
                out,
                "serving deployment {active}, the store's active one: this manifest is deployment {id}, \
                 {why}; `nimbus rollback {id}` serves it",
                id = record.id,
                why = if started_with.is_some() {
                    "unchanged since this node last started"
                } else {
                    "which the store has served before"
                },
            )?;
            let first = crate::serving::prepare_stored(server, Some(&local), active)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "failed to prepare deployment {active}: {}",
                        crate::serving::reason(&e)
                    )
                })?;
            print_report(&mut out, &first)?;
            first
        }
        _ => {
            let first = Deployment::prepare(server, record.id, app, &bytes).await?;
            print_report(&mut out, &first)?;
            if active != Some(record.id) {
                store
                    .activate(record.id)
                    .await
                    .context("failed to activate the deployment")?;
            }
            writeln!(out, "deployment {} active", record.id)?;
            first
        }
    };
    // Only once it prepared: a start that failed did not start with it. A
    // file that already says so is left alone (no write, no fsync).
    if started_with.as_deref() != Some(digest.as_str()) {
        write_atomically(&started_with_path, digest.as_bytes())
            .with_context(|| format!("failed to write {}", started_with_path.display()))?;
    }
    Ok((local, first))
}

/// Writes `bytes` to `path` whole or not at all.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn print_report(out: &mut impl std::io::Write, deployment: &Deployment) -> std::io::Result<()> {
    for line in &deployment.report {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The local app's manifest text and components, each component kept in
/// the store under its digest.
pub(crate) struct Staged {
    pub manifest: String,
    /// Function name to component digest.
    pub components: BTreeMap<String, String>,
    /// Function name to component bytes.
    pub bytes: HashMap<String, Arc<Vec<u8>>>,
}

/// Reads `app`'s manifest and components and puts the components the store
/// lacks into it.
/// `manifest` is the text `app` was parsed from.
pub(crate) async fn stage(
    store: &dyn nimbus_store::Store,
    app: &App,
    manifest: String,
) -> anyhow::Result<Staged> {
    let staged = read_local(app, manifest)?;
    put_missing_components(store, app, &staged).await?;
    Ok(staged)
}

/// `app`'s components read and digested; `manifest` is the text `app` was
/// parsed from. Touches no store.
fn read_local(app: &App, manifest: String) -> anyhow::Result<Staged> {
    let mut bytes = HashMap::new();
    let mut components = BTreeMap::new();
    for function in app.functions.values() {
        let component = std::fs::read(&function.component).with_context(|| {
            format!("failed to read component {}", function.component.display())
        })?;
        let digest = nimbus_store::deployment::component_digest(&component);
        components.insert(function.name.clone(), digest);
        bytes.insert(function.name.clone(), Arc::new(component));
    }
    Ok(Staged {
        manifest,
        components,
        bytes,
    })
}

/// Puts the components of `staged` the store lacks into it (the ones it
/// keeps get a new grace).
async fn put_missing_components(
    store: &dyn nimbus_store::Store,
    app: &App,
    staged: &Staged,
) -> anyhow::Result<()> {
    let wanted: Vec<String> = staged.components.values().cloned().collect();
    let missing = store
        .missing_components(&wanted)
        .await
        .context("failed to read the store's components")?;
    for function in app.functions.values() {
        let digest = &staged.components[&function.name];
        if missing.contains(digest) {
            store
                .put_component(digest, staged.bytes[&function.name].to_vec())
                .await
                .with_context(|| format!("failed to store the component of `{}`", function.name))?;
        }
    }
    Ok(())
}
