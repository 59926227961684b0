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
use nimbus_engine::{CacheOutcome, EventFunction, LoadedFunction, Services};
use nimbus_gateway::PublicGateway;
use nimbus_gateway::api::{AppView, Functions};
use nimbus_gateway::auth::{Authenticator, JwtVerifier};
use nimbus_manifest::App;
use nimbus_store::queue::QueueConfig;
use nimbus_store::{StreamView, TableConfig};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// One version of the app, compiled, checked and declared.
pub struct Deployment {
    /// Its id in the store's deployments.
    pub id: u64,
    pub app: App,
    /// Event functions by name, for triggers and `/v1` invocation.
    pub event: Arc<HashMap<String, Arc<EventFunction>>>,
    triggers: Vec<Box<dyn Trigger>>,
    /// A line per function and trigger, as `nimbus up` prints them.
    pub report: Vec<String>,
    /// Its routes, for the public listener.
    pub gateway: Arc<PublicGateway>,
    /// What `/v1` sees of it.
    pub view: Arc<AppView>,
}

impl Deployment {
    /// Makes deployment `id`, `app` with each function's component bytes in
    /// `components`, ready on `server`, with a line per function and
    /// trigger in its `report`. Fails, naming the reason, if a component does not load, a
    /// trigger does not fit its function, or the store refuses a
    /// declaration (a table's keys changed).
    pub async fn prepare(
        server: &Server,
        id: u64,
        app: App,
        components: &HashMap<String, Arc<Vec<u8>>>,
    ) -> anyhow::Result<Deployment> {
        let mut report = Vec::new();
        for function in app.functions.values() {
            if function.memory_mb > server.max_function_memory_mb {
                anyhow::bail!(
                    "function `{}` asks for memory_mb = {}; this server allows at most {} \
                     (--max-function-memory-mb)",
                    function.name,
                    function.memory_mb,
                    server.max_function_memory_mb
                );
            }
        }
        let buckets = Arc::new(
            server
                .buckets
                .for_app(&app)
                .await
                .context("failed to open the buckets")?,
        );
        let jwt = match &app.jwt {
            Some(config) => Some(
                JwtVerifier::new(config.clone())
                    .await
                    .with_context(|| format!("[auth.jwt] of {}", app.manifest_path.display()))?,
            ),
            None => None,
        };
        let services = Arc::new(Services {
            tables: server.store.clone(),
            table_configs: Arc::new(app.tables.clone()),
            queues: server.store.clone(),
            secrets: server.secrets.clone(),
            functions: Default::default(),
            metrics: server.metrics.clone(),
            tracer: server.tracer.clone(),
            history: server.history.clone(),
            buckets: buckets.clone(),
        });
        let mut http = HashMap::new();
        let mut event = HashMap::new();
        let mut kinds = HashMap::new();
        for function in app.functions.values() {
            let bytes = components
                .get(&function.name)
                .with_context(|| format!("no component for function `{}`", function.name))?;
            // Compiling takes a while: off the async workers' hands.
            let (loaded, outcome) = tokio::task::block_in_place(|| {
                server
                    .runtime
                    .load_function_bytes(function, bytes, &server.cache, &services)
            })?;
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
            report.push(format!("function {} ({kind}): {how}", function.name));
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
            report.extend(trigger.describe());
        }
        let gateway = Arc::new(PublicGateway::new(
            &app,
            http.clone(),
            Authenticator::new(server.keys.clone(), jwt),
            server.limits.body_read_timeout,
            server.metrics.clone(),
            server.tracer.clone(),
        ));
        // What `/v1` refuses to delete while this version is served.
        let queues = app
            .queues
            .keys()
            .cloned()
            .chain(triggers.iter().flat_map(|t| t.queues(&app)).map(|q| q.name))
            .collect();
        let view = Arc::new(AppView {
            functions: Functions {
                event: event.clone(),
                http: http.keys().cloned().collect(),
            },
            queues,
            buckets,
            tables: app.tables.clone(),
            schedules: app.schedule_triggers.clone(),
        });
        Ok(Deployment {
            id,
            app,
            event: Arc::new(event),
            triggers,
            report,
            gateway,
            view,
        })
    }

    /// Starts every trigger's workers; they stop taking work once `stopped`
    /// turns true. `deployed_ms` is when this version went live.
    pub fn start(
        &self,
        server: &Server,
        deployed_ms: u64,
        stopped: watch::Receiver<bool>,
    ) -> JoinSet<()> {
        let context = TriggerContext {
            store: server.store.clone(),
            clock: server.clock.clone(),
            ownership: server.ownership.clone(),
            tracer: server.tracer.clone(),
            started_ms: server.started_ms,
            deployed_ms,
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
    // Every check before the first write: a refused version changes nothing.
    let tables = table_configs(app);
    check_table_keys(&tables, store).await?;
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

fn table_configs(app: &App) -> Vec<TableConfig> {
    app.tables
        .values()
        .map(|t| TableConfig {
            name: t.name.clone(),
            partition_key: t.partition_key.clone(),
            sort_key: t.sort_key.clone(),
            stream: t.stream.as_deref().and_then(StreamView::parse),
            stream_retention_ms: t.stream_retention_s * 1000,
            max_item_bytes: t.max_item_bytes as usize,
        })
        .collect()
}

/// A table's keys say where each item lives: once it holds items they
/// cannot change under them (a new version may rename the attributes only
/// of an empty table).
async fn check_table_keys(
    tables: &[TableConfig],
    store: &dyn nimbus_store::Store,
) -> anyhow::Result<()> {
    let stored = store
        .tables()
        .await
        .context("failed to read the declared tables")?;
    for table in tables {
        let Some(old) = stored.iter().find(|t| t.name == table.name) else {
            continue;
        };
        if old.partition_key == table.partition_key && old.sort_key == table.sort_key {
            continue;
        }
        let holds_items = !store
            .scan(&table.name, None, 1)
            .await
            .context("failed to read the table")?
            .items
            .is_empty();
        if holds_items {
            let keys = |t: &TableConfig| match &t.sort_key {
                Some(sort) => format!("partition key `{}`, sort key `{sort}`", t.partition_key),
                None => format!("partition key `{}`", t.partition_key),
            };
            anyhow::bail!(
                "table `{}` holds items under {}; its keys cannot change to {} \
                 (declare a new table and move the items)",
                table.name,
                keys(old),
                keys(table)
            );
        }
    }
    Ok(())
}
