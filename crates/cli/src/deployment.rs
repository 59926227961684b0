//! A deployment: one version of the app made ready to serve inside a
//! [`Server`]. Its functions are compiled (or loaded from the artifact
//! cache) and checked against their triggers by the rule `nimbus validate`
//! runs too, its queues, tables and trigger queues are declared, and its
//! triggers are prepared; started, its triggers' workers run until told to
//! stop. What outlives one version (listeners, engine, store) is the
//! server's.

use crate::server::Server;
use anyhow::Context as _;
use nimbus_dispatch::trigger::{self, FunctionKind, Trigger, TriggerContext};
use nimbus_engine::{CacheOutcome, EventFunction, HttpFunction, LoadedFunction, Services};
use nimbus_manifest::App;
use nimbus_store::queue::QueueConfig;
use nimbus_store::{StreamView, TableConfig};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One version of the app, compiled, checked and declared.
pub struct Deployment {
    pub app: App,
    /// HTTP functions by name, for the gateway's routes.
    pub http: HashMap<String, Arc<HttpFunction>>,
    /// Event functions by name, for triggers and `/v1` invocation.
    pub event: Arc<HashMap<String, Arc<EventFunction>>>,
    triggers: Vec<Box<dyn Trigger>>,
}

impl Deployment {
    /// Makes `app` ready on `server`, reporting each function and trigger to
    /// `out`. Fails, naming the reason, if a component does not load or a
    /// trigger does not fit its function.
    pub async fn prepare(
        server: &Server,
        app: App,
        out: &mut dyn Write,
    ) -> anyhow::Result<Deployment> {
        let services = Arc::new(Services {
            tables: server.store.clone(),
            table_configs: Arc::new(app.tables.clone()),
            queues: server.store.clone(),
            secrets: server.secrets.clone(),
            functions: Default::default(),
            metrics: server.metrics.clone(),
            tracer: server.tracer.clone(),
            history: server.history.clone(),
            buckets: server.buckets.clone(),
        });
        let mut http = HashMap::new();
        let mut event = HashMap::new();
        let mut kinds = HashMap::new();
        for function in app.functions.values() {
            let (loaded, outcome) =
                server
                    .runtime
                    .load_function(function, &server.cache, &services)?;
            let (how, artifact) = match outcome {
                CacheOutcome::Hit => ("loaded cached artifact", "cached"),
                CacheOutcome::Compiled => ("compiled", "compiled"),
            };
            server
                .metrics
                .function_loads
                .with(&[&function.name, artifact])
                .inc();
            kinds.insert(function.name.clone(), loaded.kind());
            let kind = match loaded {
                LoadedFunction::Http(f) => {
                    http.insert(function.name.clone(), Arc::new(f));
                    "HTTP"
                }
                LoadedFunction::Event(f) => {
                    event.insert(function.name.clone(), Arc::new(f));
                    "event"
                }
            };
            writeln!(out, "function {} ({kind}): {how}", function.name)?;
        }
        let kind_of = |name: &str| kinds.get(name).copied();
        check(&app, &kind_of)?;
        services.functions.publish(&event);
        let triggers = trigger::triggers(&app, &kind_of);
        declare(&app, &triggers, server.store.as_ref()).await?;
        for trigger in &triggers {
            trigger
                .prepare(server.store.as_ref())
                .await
                .with_context(|| format!("failed to prepare {}", trigger.subject()))?;
            if let Some(line) = trigger.describe() {
                writeln!(out, "{line}")?;
            }
        }
        Ok(Deployment {
            app,
            http,
            event: Arc::new(event),
            triggers,
        })
    }

    /// Starts every trigger's workers; they stop taking work once `stopped`
    /// turns true.
    pub fn start(&self, server: &Server, stopped: watch::Receiver<bool>) -> JoinSet<()> {
        let context = TriggerContext {
            store: server.store.clone(),
            clock: server.clock.clone(),
            ownership: server.ownership.clone(),
            tracer: server.tracer.clone(),
            started_ms: server.started_ms,
            functions: self.event.clone(),
            stopped,
        };
        let mut tasks = JoinSet::new();
        for trigger in &self.triggers {
            trigger.start(&context, &mut tasks);
        }
        tasks
    }
}

/// The rule `nimbus up` and `nimbus validate` share: every trigger invokes
/// a function of the kind it calls, and destinations and invoke grants name
/// event functions.
pub fn check(app: &App, kind_of: &dyn Fn(&str) -> Option<FunctionKind>) -> anyhow::Result<()> {
    let problems = trigger::check(app, kind_of);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// Declares the app's queues and tables, then the internal queues its
/// triggers deliver from (which may name the app's queues as destinations).
async fn declare(
    app: &App,
    triggers: &[Box<dyn Trigger>],
    store: &dyn nimbus_store::Store,
) -> anyhow::Result<()> {
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
    let internal: Vec<QueueConfig> = triggers.iter().flat_map(|t| t.queues(app)).collect();
    store
        .declare_queues(&internal)
        .await
        .context("failed to declare the triggers' internal queues")?;
    Ok(())
}
