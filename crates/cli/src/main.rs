//! The `nimbus` binary: parses the command line and hands off to the crates
//! that do the work.

mod access;
mod bucket;
mod build;
mod client;
mod cluster;
mod deploy;
mod deployment;
mod dev;
mod endpoints;
mod history;
mod key;
mod new;
mod node;
mod output;
mod queue;
mod schedule;
mod secret;
mod server;
mod serving;
mod table;
mod top;
mod up;
mod usage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Nimbus runs WebAssembly functions when events arrive.
#[derive(Parser)]
#[command(name = "nimbus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (on stderr) are written: `text` for people, `json` (one
    /// object per line) for log collectors.
    #[arg(long, global = true, env = "NIMBUS_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run an app: compile its components and serve its routes.
    Up(up::UpArgs),
    /// `up --build`, then rebuild and deploy the app whenever a file under
    /// its directory changes; a failed build is shown and the running
    /// version keeps serving.
    Dev(dev::DevArgs),
    /// Start a project from a template: its manifest, source and what it
    /// needs to build.
    New(new::NewArgs),
    /// Run every function's `build` command.
    Build {
        /// The app's manifest.
        #[arg(default_value = "nimbus.toml")]
        manifest: PathBuf,
    },
    /// Send, receive and inspect messages of a running app's queues.
    Queue {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// List, upload, download, inspect and remove objects of a running
    /// app's buckets.
    Bucket {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: bucket::BucketCommand,
    },
    /// Inspect and redrive dead-letter queues of a running app.
    Dlq {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: queue::DlqCommand,
    },
    /// Set, list and delete a running app's secrets (values from stdin or a
    /// file, sealed at rest, readable only by functions granted them).
    Secret {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Read and write items of a running app's tables and read their
    /// change streams.
    Table {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: table::TableCommand,
    },
    /// Invoke an event function of a running app with one event and wait for
    /// the outcome (printed as JSON; exit status 1 if the function failed).
    Invoke {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// The function's name.
        function: String,
        /// The event's data as text.
        #[arg(long, conflicts_with = "file")]
        data: Option<String>,
        /// Read the event's data from a file (`-` for stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Queue the event and return once it is durable; the function runs
        /// later with its retries and destinations.
        #[arg(long = "async")]
        asynchronous: bool,
    },
    /// List a running app's schedules and their next fire times.
    Schedule {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// See the nodes sharing a running app's store: heartbeats, versions,
    /// work in flight and leases.
    Cluster {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Create, list and revoke the API keys of a running app.
    Key {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Create, list and revoke the access keys the S3 and SQS endpoints
    /// accept (`nimbus up --s3-listen/--sqs-listen`).
    AccessKey {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(subcommand)]
        command: access::AccessKeyCommand,
    },
    /// Watch a running app: per-function rates, errors, latency and
    /// concurrency, and per-queue backlog, refreshed in the terminal.
    Top {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// Time between refreshes (and the window rates are measured over).
        #[arg(long, default_value_t = 2000, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
        interval_ms: u64,
        /// Print one frame (after one interval) and exit, for scripts.
        #[arg(long)]
        once: bool,
    },
    /// List invocation records of a running app, newest first.
    Invocations {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// Only this function's invocations.
        function: Option<String>,
        /// Only invocations that failed (outcome `error` or `timeout`).
        #[arg(long)]
        failed: bool,
        /// At most this many (1 to 1000; default 50).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        #[command(flatten)]
        format: output::Format,
    },
    /// Show one trace from the invocation history: each span under its
    /// parent, across every recorded invocation of the trace.
    Trace {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// The trace id (32 hex digits, as `nimbus invocations -o json`
        /// and the console show it).
        trace_id: String,
        #[command(flatten)]
        format: output::Format,
    },
    /// Show each function's metered use per hour: invocations, billed time
    /// (rounded up per invocation), GB-seconds and outbound bytes.
    Usage {
        #[command(flatten)]
        admin: queue::AdminArgs,
        #[command(flatten)]
        args: usage::UsageArgs,
    },
    /// Print a function's output (`INVOCATION_ID STREAM TEXT` per line): the
    /// lines of its recent invocations, or with --follow each line as it is
    /// written.
    Logs {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// The function's name.
        function: String,
        /// Keep printing lines as they are written, until interrupted.
        #[arg(long, short)]
        follow: bool,
    },
    /// Send the app to a running server: it goes live without a restart
    /// once the server has checked and compiled it (only components the
    /// server lacks are uploaded).
    Deploy {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// The app's manifest.
        #[arg(default_value = "nimbus.toml")]
        manifest: PathBuf,
        /// Run the functions' build commands first.
        #[arg(long)]
        build: bool,
    },
    /// List the app versions deployed to a running server, newest first.
    Deployments {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve an earlier deployment again [default: the one before the
    /// active one].
    Rollback {
        #[command(flatten)]
        admin: queue::AdminArgs,
        /// The deployment's id (see `nimbus deployments`).
        id: Option<u64>,
    },
    /// Check a manifest and its component files without running anything.
    Validate {
        /// The app's manifest.
        #[arg(default_value = "nimbus.toml")]
        manifest: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The S3 wire library logs every client error (a missing key, bad XML)
    // at error level; the endpoint logs real failures itself. Silenced
    // unless NIMBUS_LOG names it.
    let mut directives = std::env::var("NIMBUS_LOG").unwrap_or_else(|_| "info".to_owned());
    if !directives.contains("s3s") {
        directives.push_str(",s3s=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Fields at the top level, so `invocation_id` is one lookup away.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Dev(args) => dev::run(args),
        Command::New(args) => new::run(&args),
        Command::Build { manifest } => build::run(&manifest),
        Command::Validate { manifest } => validate(&manifest),
        Command::Deploy {
            admin,
            manifest,
            build,
        } => deploy::deploy(&admin, &manifest, build),
        Command::Deployments { admin, json } => deploy::list(&admin, json),
        Command::Rollback { admin, id } => deploy::rollback(&admin, id),
        Command::Queue { admin, command } => queue::run_queue(&admin, command),
        Command::Invoke {
            admin,
            function,
            data,
            file,
            asynchronous,
        } => queue::run_invoke(&admin, &function, data, file, asynchronous),
        Command::Bucket { admin, command } => bucket::run(&admin, command),
        Command::Dlq { admin, command } => queue::run_dlq(&admin, command),
        Command::Secret { admin, command } => secret::run(&admin, command),
        Command::Table { admin, command } => table::run(&admin, command),
        Command::Key { admin, command } => key::run(&admin, command),
        Command::AccessKey { admin, command } => access::run(&admin, command),
        Command::Usage { admin, args } => usage::run(&admin, args),
        Command::Schedule { admin, command } => schedule::run(&admin, command),
        Command::Cluster { admin, command } => cluster::run(&admin, command),
        Command::Top {
            admin,
            interval_ms,
            once,
        } => top::run(&admin, std::time::Duration::from_millis(interval_ms), once),
        Command::Invocations {
            admin,
            function,
            failed,
            limit,
            format,
        } => history::run_invocations(&admin, function.as_deref(), failed, limit, format),
        Command::Logs {
            admin,
            function,
            follow,
        } => history::run_logs(&admin, &function, follow),
        Command::Trace {
            admin,
            trace_id,
            format,
        } => history::run_trace(&admin, &trace_id, format),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks what `nimbus up` checks before it serves, without compiling: the
/// manifest, the component files, the interface each component exports and
/// whether each trigger fits its function.
fn validate(manifest: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let app = nimbus_manifest::App::load(manifest)?;
    app.check_components()?;
    let mut kinds = std::collections::HashMap::new();
    for function in app.functions.values() {
        let bytes = std::fs::read(&function.component).with_context(|| {
            format!("failed to read component {}", function.component.display())
        })?;
        let kind = nimbus_engine::component_kind(&bytes)
            .with_context(|| format!("component {}", function.component.display()))?
            .with_context(|| {
                format!(
                    "function `{}` exports neither wasi:http/incoming-handler (an HTTP function) \
                     nor nimbus:function/handler (an event function)",
                    function.name
                )
            })?;
        kinds.insert(function.name.clone(), kind);
    }
    deployment::check(&app, &|name| kinds.get(name).copied())?;
    println!(
        "{}: app `{}` is valid ({} functions, {} HTTP routes, {} schedules)",
        manifest.display(),
        app.name,
        app.functions.len(),
        app.http_triggers.len(),
        app.schedule_triggers.len()
    );
    Ok(())
}
