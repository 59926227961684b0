//! Host capabilities: one module per Nimbus interface a guest can import.
//! Each resolves the function's grants when the app loads and checks them
//! before any backend call; a denial is an error the guest sees (never a
//! trap) plus an audit line in the log.

mod bucket;
mod function;
mod log;
mod queue;
mod secret;
mod table;

pub use function::{FunctionDirectory, MAX_CALL_DEPTH, async_queue_name};
pub use table::{MAX_QUERY_LIMIT, item_key};

use nimbus_manifest::Grant;
use nimbus_store::QueueStore;
use std::collections::HashSet;
use std::sync::Arc;

/// The services capabilities call, shared by every function.
#[derive(Clone)]
pub struct Services {
    pub queues: Arc<dyn QueueStore>,
    /// Secrets, sealed at rest; opened only for granted reads.
    pub secrets: Arc<nimbus_vault::Vault>,
    /// The app's event functions, for `function:NAME:invoke`.
    pub functions: FunctionDirectory,
    /// Where invocations are counted.
    pub metrics: Arc<nimbus_metrics::Metrics>,
    /// Where spans go (nowhere unless an OTLP endpoint is configured;
    /// each invocation also keeps its own for its record).
    pub tracer: nimbus_trace::Tracer,
    /// Where invocations leave their records and live output.
    pub history: Arc<crate::history::History>,
    /// Tables and their change streams.
    pub tables: Arc<dyn nimbus_store::TableStore>,
    /// The app's tables, for their key attributes.
    pub table_configs: Arc<std::collections::BTreeMap<String, nimbus_manifest::Table>>,
    /// The app's object buckets.
    pub buckets: Arc<nimbus_bucket::Buckets>,
}

/// A function's grants, resolved into allow-sets.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    queue_send: HashSet<String>,
    secret_read: HashSet<String>,
    function_invoke: HashSet<String>,
    table_read: HashSet<String>,
    table_write: HashSet<String>,
    /// `(bucket, key prefix)` pairs; an empty prefix is the whole bucket.
    bucket_read: HashSet<(String, String)>,
    bucket_write: HashSet<(String, String)>,
}

impl Grants {
    pub fn resolve(grants: &[Grant]) -> Self {
        let mut resolved = Grants::default();
        for grant in grants {
            match grant {
                Grant::QueueSend(queue) => {
                    resolved.queue_send.insert(queue.clone());
                }
                Grant::SecretRead(name) => {
                    resolved.secret_read.insert(name.clone());
                }
                Grant::FunctionInvoke(function) => {
                    resolved.function_invoke.insert(function.clone());
                }
                Grant::TableRead(table) => {
                    resolved.table_read.insert(table.clone());
                }
                Grant::TableWrite(table) => {
                    resolved.table_write.insert(table.clone());
                }
                Grant::BucketRead { bucket, prefix } => {
                    resolved
                        .bucket_read
                        .insert((bucket.clone(), prefix.clone()));
                }
                Grant::BucketWrite { bucket, prefix } => {
                    resolved
                        .bucket_write
                        .insert((bucket.clone(), prefix.clone()));
                }
            }
        }
        resolved
    }
}

/// What a capability knows about the invocation calling it.
pub(crate) struct CapabilityCtx {
    pub services: Arc<Services>,
    pub grants: Arc<Grants>,
    pub function: Arc<str>,
    pub invocation_id: Arc<str>,
    /// Synchronous calls between this invocation and its trigger (0 when a
    /// trigger invoked it directly).
    pub depth: u32,
    /// Starts host calls' spans, kept with the invocation's record (and
    /// exported when an endpoint is configured).
    pub tracer: nimbus_trace::Tracer,
    /// The invocation's span: host calls are its children, and what they
    /// send on carries their context.
    pub trace: nimbus_trace::TraceContext,
}

impl CapabilityCtx {
    /// A span for one host call, a child of the invocation's.
    fn span(&self, name: String, kind: nimbus_trace::SpanKind) -> nimbus_trace::Span {
        self.tracer.start(name, kind, Some(&self.trace))
    }

    /// Sends one message as the host call `span`: the message carries the
    /// span's context on (so its consumer continues the trace), the queue's
    /// consumers are woken, and store errors become what the guest sees.
    async fn send_traced(
        &self,
        queue: &str,
        mut message: nimbus_store::SendMessage,
        mut span: nimbus_trace::Span,
    ) -> Result<String, nimbus_wit::types::Error> {
        use nimbus_store::StoreError;
        use nimbus_wit::types::Error;
        message
            .attributes
            .insert("traceparent".to_owned(), span.context.to_traceparent());
        let sent = self.services.queues.send(queue, vec![message]).await;
        if let Err(e) = &sent {
            span.fail(e.to_string());
        }
        span.end();
        match sent {
            Ok(mut receipts) => Ok(receipts.remove(0).message_id),
            Err(StoreError::QueueNotFound(q)) => Err(Error::NotFound(format!("queue `{q}`"))),
            Err(e @ (StoreError::MessageTooLarge { .. } | StoreError::InvalidMessage(_))) => {
                Err(Error::Invalid(e.to_string()))
            }
            Err(e) => {
                tracing::error!(function = %self.function, invocation_id = %self.invocation_id, "send to {queue} failed: {e}");
                Err(Error::Unavailable(e.to_string()))
            }
        }
    }

    /// Records a denial for the audit log and returns the guest-visible error.
    fn deny(&self, grant: String) -> nimbus_wit::types::Error {
        tracing::warn!(
            target: "nimbus::audit",
            function = %self.function,
            invocation_id = %self.invocation_id,
            grant = %grant,
            "access denied: the function is not granted `{grant}`"
        );
        nimbus_wit::types::Error::AccessDenied(grant)
    }
}

impl nimbus_wit::types::Host for crate::state::InvocationState {}
