//! The storage interface: traits and the types they exchange, with no
//! dependency on any backend. Backends (`nimbus-store-sqlite`, later
//! PostgreSQL) implement the traits and run the same conformance suite.

pub mod bucket;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod deployment;
pub mod history;
pub mod keys;
pub mod lease;
pub mod node;
pub mod queue;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod table;

pub use bucket::{
    BucketDeleted, BucketStore, EventsFor, ListPage, ListQuery, NewObject, ObjectMeta,
    PutOutcome as ObjectPutOutcome,
};
pub use clock::{AlignedClock, Clock, ManualClock, SystemClock, Timestamp};
pub use deployment::{Deployment, DeploymentStore, DeploymentSummary, NewDeployment};
pub use history::{
    HistoryStore, InvocationFilter, InvocationRecord, LogLine, SpanRecord, UsageFilter, UsageRow,
};
pub use keys::{ApiKeyRecord, KeyStore, KeyUsage};
pub use lease::{Fence, Lease, LeaseStore};
pub use node::{NodeReport, NodeStore};
pub use queue::{
    NackOptions, QueueConfig, QueueSignals, QueueStats, QueueStore, ReceivedMessage, SendMessage,
    SendReceipt, StoredMessage,
};
pub use schedule::{ScheduleState, ScheduleStore};
pub use secret::{PutOutcome, SealedSecret, SecretInfo, SecretStore};
pub use table::{
    ChangeKind, ChangeRecord, ConditionFailed, ItemKey, ItemPage, Lane, PutCondition, SortRange,
    StoredItem, StreamView, TableConfig, TableDeleted, TableStore,
};

/// Every store trait at once: what a server needs from its backend. Each
/// backend implements the traits; this adds what is not one service's.
#[async_trait::async_trait]
pub trait Store:
    QueueStore
    + KeyStore
    + SecretStore
    + HistoryStore
    + TableStore
    + BucketStore
    + ScheduleStore
    + LeaseStore
    + NodeStore
    + DeploymentStore
    + Send
    + Sync
    + 'static
{
    /// Reports every commit (and dead-letter move) to `observer` from now
    /// on; only the first observer set is kept.
    fn observe(&self, observer: std::sync::Arc<dyn StoreObserver>);

    /// Where the state lives, for messages: a path or a URL without its
    /// password.
    fn location(&self) -> String;

    /// The wake-ups this store gives after each commit: a queue's name when
    /// messages were sent or moved into it, [`table::stream_signal`] when a
    /// streamed table was written, [`deployment::DEPLOYMENT_SIGNAL`] when
    /// the active deployment changed. On a backend shared by many processes,
    /// commits in other processes signal here too. Callers wait on them and
    /// never notify by hand.
    fn signals(&self) -> &QueueSignals;

    /// A cheap round trip that proves the store can serve requests now (for
    /// readiness): `Unavailable` when the backend cannot be reached.
    /// Callers bound it with a timeout of their own.
    async fn ping(&self) -> StoreResult<()>;

    /// The store's clock now: the one leases, delays and retention are
    /// judged by (the database's on a shared store, or the test clock).
    async fn now_ms(&self) -> StoreResult<Timestamp>;
}

/// Told what the store did once it is durable (for metrics), without the
/// store knowing who listens.
pub trait StoreObserver: Send + Sync {
    /// A transaction carrying `requests` requests committed, `took` after it
    /// began.
    fn committed(&self, requests: usize, took: std::time::Duration);
    /// `messages` messages of `queue` were moved to its dead-letter queue.
    fn dead_lettered(&self, queue: &str, messages: u64);
    /// One sync of the store's own write-ahead log ended, `took` after it
    /// began: every acknowledged write waits for one, so a slow one is the
    /// disk holding answers up. Only a store that syncs its log itself (the
    /// embedded one) reports it; a database server syncs its own.
    fn log_synced(&self, _took: std::time::Duration) {}
}

/// What can go wrong in a store call. Backend errors arrive as text: no
/// driver type crosses this interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("queue `{0}` does not exist")]
    QueueNotFound(String),
    #[error("message is {size} bytes, over the queue's limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    /// A message the queue refuses for its attributes or `dedup_id` (see
    /// [`queue::check_message`]).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    #[error("receipt handle is not current: the message was deleted or received again since")]
    StaleReceipt,
    #[error("message `{0}` does not exist")]
    MessageNotFound(String),
    /// A queue deletion refused because another queue still moves its
    /// dead letters there.
    #[error(
        "queue `{queue}` is the dead-letter queue of queue `{source_queue}`; \
         delete `{source_queue}` first"
    )]
    DeadLetterQueueInUse { queue: String, source_queue: String },
    #[error("API key `{0}` does not exist")]
    KeyNotFound(String),
    #[error("table `{0}` does not exist")]
    TableNotFound(String),
    #[error("item is {size} bytes, over the table's limit of {limit} bytes")]
    ItemTooLarge { size: usize, limit: usize },
    #[error("invalid item: {0}")]
    InvalidItem(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// The backend cannot be reached (a database server down or restarting);
    /// a write that met this may or may not have committed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store is shut down")]
    Closed,
    /// A write made under a lease that has changed hands since (see
    /// [`lease::Fence`]): the writer is no longer the owner and must stop.
    #[error("lease `{lease}` has passed to another owner (fence {token} is stale)")]
    Fenced { lease: String, token: u64 },
    /// An object commit whose upload is not registered: it was abandoned,
    /// or outlived the bound after which a sweep may remove its blob.
    #[error(
        "the upload of blob `{0}` is no longer registered (it took too long, \
         and its bytes may have been swept): nothing was stored; try again"
    )]
    UploadNotRegistered(String),
    /// A component refused before anything was stored: its bytes do not
    /// hash to the digest given, the digest is malformed, or it is too
    /// large (see [`deployment::check_component`]).
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// A deployment past the bounds of [`deployment`].
    #[error("invalid deployment: {0}")]
    InvalidDeployment(String),
    /// A deployment naming a component the store does not keep: upload it
    /// (see [`deployment::DeploymentStore::missing_components`]) and try
    /// again.
    #[error(
        "function `{function}` names component {digest}, which the store does not hold: \
         upload it first"
    )]
    ComponentMissing { function: String, digest: String },
    #[error("deployment {0} does not exist")]
    DeploymentNotFound(u64),
    /// Written by a newer binary whose changes this one would misread:
    /// the schema is at version `found` and needs a binary that knows at
    /// least version `requires` (a newer schema that older binaries can
    /// still use asks for less than its own version).
    #[error(
        "the store's schema is version {found} and needs a nimbus that knows schema version \
         {requires} or later; this one knows version {known}: run a newer nimbus"
    )]
    SchemaTooNew {
        found: u32,
        requires: u32,
        known: u32,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;
