//! `nimbus up`: load the app, compile or load its components, bind the
//! listeners, report where they are, and serve until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Args;
use nimbus_engine::{ArtifactCache, CacheOutcome, EngineSettings, Runtime};
use nimbus_gateway::{Drain, ServerLimits};
use nimbus_manifest::App;
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
    /// Open connections each listener accepts at once.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Time a client has to send a request's headers, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// Time a client has to send a request's body, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_ms: u64,
}

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

    let runtime = Runtime::new(EngineSettings::for_app(&app))?;
    let cache = ArtifactCache::new(data_dir.join("artifacts"));
    let mut functions = HashMap::new();
    let mut out = std::io::stdout().lock();
    for function in app.functions.values() {
        let (loaded, outcome) = runtime.load_http_function(function, &cache)?;
        let how = match outcome {
            CacheOutcome::Hit => "loaded cached artifact",
            CacheOutcome::Compiled => "compiled",
        };
        writeln!(out, "function {}: {how}", function.name)?;
        functions.insert(function.name.clone(), Arc::new(loaded));
    }
    for trigger in &app.http_triggers {
        let methods = trigger
            .methods
            .as_ref()
            .map_or("*".to_owned(), |m| m.join(","));
        writeln!(
            out,
            "route {methods} {} -> {}",
            trigger.route, trigger.function
        )?;
    }
    drop(out);

    let limits = ServerLimits {
        max_connections: args.max_connections as usize,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
        shutdown_grace: Duration::from_millis(args.shutdown_grace_ms),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    tokio.block_on(async {
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
        tracing::info!(app = %app.name, "serving");
        let drain =
            nimbus_gateway::run(public, admin, &app, functions, limits, shutdown_signal()).await;
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

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = terminate.recv() => tracing::info!("received SIGTERM"),
    }
}
