//! The storage interface: traits and the types they exchange, with no
//! dependency on any backend. Backends (`nimbus-store-sqlite`, later
//! PostgreSQL) implement the traits and run the same conformance suite.

pub mod bucket;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod history;
pub mod keys;
pub mod queue;
pub mod schedule;
pub mod secret;
pub mod table;

pub use bucket::{
    BucketStore, EventsFor, ListPage, ListQuery, NewObject, ObjectMeta,
    PutOutcome as ObjectPutOutcome,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use history::{HistoryStore, InvocationFilter, InvocationRecord, LogLine};
pub use keys::{ApiKeyRecord, KeyStore, KeyUsage};
pub use queue::{
    NackOptions, QueueConfig, QueueSignals, QueueStats, QueueStore, ReceivedMessage, SendMessage,
    SendReceipt, StoredMessage,
};
pub use schedule::{ScheduleState, ScheduleStore};
pub use secret::{PutOutcome, SealedSecret, SecretInfo, SecretStore};
pub use table::{
    ChangeKind, ChangeRecord, ConditionFailed, ItemKey, ItemPage, Lane, PutCondition, SortRange,
    StoredItem, StreamView, TableConfig, TableStore,
};

/// Told what the store did once it is durable (for metrics), without the
/// store knowing who listens.
pub trait StoreObserver: Send + Sync {
    /// A transaction carrying `requests` requests committed, `took` after it
    /// began.
    fn committed(&self, requests: usize, took: std::time::Duration);
    /// `messages` messages of `queue` were moved to its dead-letter queue.
    fn dead_lettered(&self, queue: &str, messages: u64);
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
    #[error("the store is shut down")]
    Closed,
}

pub type StoreResult<T> = Result<T, StoreError>;
