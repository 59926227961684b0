//! The trigger abstraction: every way a function is invoked (a route, a
//! queue, a table's change stream, an object trigger, a schedule,
//! asynchronous invocation) is one [`Trigger`]. Each is checked against its
//! app's functions by one rule ([`check`], which `nimbus validate` and
//! `nimbus up` both run), declares the internal queues it delivers from,
//! prepares what it needs in the store, and is started under one
//! [`TriggerContext`]; each kind lives in its own module.

use crate::ownership::Ownership;
use nimbus_engine::EventFunction;
pub use nimbus_engine::FunctionKind;
use nimbus_manifest::{App, Destination, Grant, RetryPolicy};
use nimbus_store::{Clock, QueueConfig, Store, StoreResult};
use nimbus_trace::Tracer;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What a trigger runs with: the server's services and its app's event
/// functions.
#[derive(Clone)]
pub struct TriggerContext {
    pub store: Arc<dyn Store>,
    /// The store's clock: event ages and due times are judged by it.
    pub clock: Arc<dyn Clock>,
    /// Which node runs singleton work (stream lanes, schedulers).
    pub ownership: Arc<Ownership>,
    pub tracer: Tracer,
    /// When this process started, by the store's clock (see
    /// [`crate::schedule::ScheduleRun::started_ms`]).
    pub started_ms: u64,
    /// When this deployment went live, by the store's clock (the process
    /// start for the first one): what a trigger new in it counts from.
    pub deployed_ms: u64,
    /// The app's event functions, by name.
    pub functions: Arc<HashMap<String, Arc<EventFunction>>>,
    /// Set once the trigger is to stop taking new work.
    pub stopped: watch::Receiver<bool>,
}

impl TriggerContext {
    /// The event function `name`; [`check`] has made sure it exists.
    pub fn function(&self, name: &str) -> Arc<EventFunction> {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("trigger started for unchecked function `{name}`"))
            .clone()
    }
}

/// A future a trigger returns from [`Trigger::prepare`].
pub type Prepare<'a> = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'a>>;

/// One way events reach a function.
pub trait Trigger: Send + Sync {
    /// What it is called in messages, such as "the queue trigger on `orders`".
    fn subject(&self) -> String;
    /// The line `nimbus up` prints for it, if any.
    fn describe(&self) -> Option<String>;
    /// The function it invokes.
    fn function(&self) -> &str;
    /// The kind of function it invokes.
    fn kind(&self) -> FunctionKind {
        FunctionKind::Event
    }
    /// Functions it sends results to; they must be event functions.
    fn destinations(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The internal queues it delivers from, declared before it starts.
    fn queues(&self, _app: &App) -> Vec<QueueConfig> {
        Vec::new()
    }
    /// What it needs in the store before it starts (after its queues are
    /// declared), such as where a stream is first read from.
    fn prepare<'a>(&'a self, _store: &'a dyn Store) -> Prepare<'a> {
        Box::pin(async { Ok(()) })
    }
    /// Starts its workers in `tasks`; they end once `ctx.stopped` is set
    /// and their work in flight is done.
    fn start(&self, ctx: &TriggerContext, tasks: &mut JoinSet<()>);
}

/// Every trigger of `app`, in the order `nimbus up` lists them: routes,
/// schedules, object triggers, queue triggers, stream triggers, then the
/// asynchronous invocation of each event function.
pub fn triggers(
    app: &App,
    kind_of: &dyn Fn(&str) -> Option<FunctionKind>,
) -> Vec<Box<dyn Trigger>> {
    let mut all: Vec<Box<dyn Trigger>> = Vec::new();
    for t in &app.http_triggers {
        all.push(Box::new(crate::http::HttpRoute(t.clone())));
    }
    for t in &app.schedule_triggers {
        all.push(Box::new(crate::schedule::Schedule(t.clone())));
    }
    for (index, t) in app.object_triggers.iter().enumerate() {
        all.push(Box::new(crate::object::Object {
            trigger: t.clone(),
            index,
        }));
    }
    for t in &app.queue_triggers {
        all.push(Box::new(crate::queue::QueueTriggerRun(t.clone())));
    }
    for t in &app.stream_triggers {
        all.push(Box::new(crate::stream::Stream(t.clone())));
    }
    for f in app.functions.values() {
        // Only event functions are invoked asynchronously.
        if kind_of(&f.name) == Some(FunctionKind::Event) {
            all.push(Box::new(crate::invoke::AsyncInvocation(f.clone())));
        }
    }
    all
}

/// Checks `app` against its functions' kinds (`kind_of`): each trigger
/// invokes a function of the kind it calls, destinations and
/// `function:NAME:invoke` grants name event functions. Returns every
/// problem found, each a sentence naming what to change.
pub fn check(app: &App, kind_of: &dyn Fn(&str) -> Option<FunctionKind>) -> Vec<String> {
    let mut problems = Vec::new();
    let http = |name: &str| kind_of(name) == Some(FunctionKind::Http);
    for trigger in triggers(app, kind_of) {
        let function = trigger.function();
        match (trigger.kind(), kind_of(function)) {
            (FunctionKind::Event, Some(FunctionKind::Http)) => problems.push(format!(
                "{} invokes function `{function}`, which is an HTTP function \
                 (it exports wasi:http/incoming-handler, not nimbus:function/handler)",
                trigger.subject()
            )),
            (FunctionKind::Http, Some(FunctionKind::Event)) => problems.push(format!(
                "{} invokes function `{function}`, which is an event function \
                 (it exports nimbus:function/handler, not wasi:http/incoming-handler)",
                trigger.subject()
            )),
            _ => {}
        }
        for target in trigger.destinations() {
            if http(target) {
                problems.push(format!(
                    "{} sends results to function `{target}`, which is an HTTP function; \
                     destinations must be event functions or queues",
                    trigger.subject()
                ));
            }
        }
    }
    for function in app.functions.values() {
        for grant in &function.grants {
            if let Grant::FunctionInvoke(target) = grant
                && http(target)
            {
                problems.push(format!(
                    "function `{}` is allowed to invoke `{target}`, which is an HTTP function; \
                     only event functions can be invoked (HTTP functions are called through their routes)",
                    function.name
                ));
            }
        }
    }
    problems
}

/// The functions a retry policy sends results to.
pub(crate) fn destination_functions(policy: &RetryPolicy) -> Vec<&str> {
    [&policy.on_success, &policy.on_failure]
        .into_iter()
        .flatten()
        .filter_map(|d| match d {
            Destination::Function(name) => Some(name.as_str()),
            Destination::Queue(_) => None,
        })
        .collect()
}
