//! `nimbus up`: the one-command start. Loads the app, opens a [`Server`]
//! (store, vault, engine, listeners), deploys the app into it and serves
//! until SIGINT or SIGTERM.

use crate::deployment::Deployment;
use crate::server::Server;
use anyhow::Context as _;
use clap::Args;
use nimbus_manifest::App;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// seconds; at most `MAX_HISTORY_RECORDS` are kept whatever this says.
    #[arg(long, default_value_t = 86_400, value_name = "S", value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub(crate) history_retention_s: u64,
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

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let app = App::load(&args.manifest)?;
    if args.build {
        crate::build::build_app(&app)?;
    }
    app.check_components()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let server = tokio.block_on(Server::open(&args, &app))?;
    let result = tokio.block_on(async {
        let deployment = {
            let mut out = std::io::stdout().lock();
            Deployment::prepare(&server, app, &mut out).await?
        };
        server.serve(deployment).await
    });
    // Cancel whatever the grace period left running (guests yield at every
    // epoch tick, so this is prompt) while the epoch ticker still runs; only
    // then stop the engine.
    tokio.shutdown_timeout(SHUTDOWN_CANCEL_TIMEOUT);
    drop(server);
    result
}
