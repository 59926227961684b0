//! The embedded store: SQLite (bundled) in WAL mode, every acknowledged
//! write synced to disk unless a lossy mode is asked for by name. One writer
//! thread owns the connection and commits every request waiting for it in
//! one transaction (group commit), so durable throughput is not one fsync per
//! request; sync threads beside it make the log durable, so the writer
//! runs the next commit while the disk syncs the last, and a commit's sync
//! need not wait for the one before it to end.

mod bucket;
mod deployment;
mod history;
mod keys;
mod lease;
mod log;
mod node;
mod queue;
mod schedule;
mod schema;
mod secret;
mod table;
mod writer;

use nimbus_store::{Clock, StoreResult, Timestamp};
use std::path::PathBuf;
use std::sync::Arc;
use writer::Writer;

pub use schema::SCHEMA_VERSION;

/// How hard a commit tries to reach the disk before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An acknowledged write survives power loss: what `synchronous=FULL`
    /// gives, with the log's sync made by the store's sync threads (SQLite
    /// itself runs at `synchronous=NORMAL`) before any answer.
    #[default]
    Fsync,
    /// `synchronous=NORMAL` and no sync threads: faster; the last commits
    /// before a power loss or OS crash can be lost (a process crash loses nothing). Logs a warning.
    RelaxedMayLoseRecentWrites,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file; created with its directory if missing.
    pub path: PathBuf,
    pub durability: Durability,
}

/// The SQLite implementation of the store traits.
pub struct SqliteStore {
    writer: Writer,
    path: PathBuf,
    signals: nimbus_store::QueueSignals,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `options.path`.
    pub fn open(options: &SqliteOptions, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        if options.durability == Durability::RelaxedMayLoseRecentWrites {
            tracing::warn!(
                path = %options.path.display(),
                "store durability is relaxed: acknowledged writes may be lost on power loss or OS crash"
            );
        }
        let signals = nimbus_store::QueueSignals::default();
        let writer = Writer::start(options, clock, signals.clone())?;
        Ok(SqliteStore {
            writer,
            path: options.path.clone(),
            signals,
        })
    }
}

/// Commits made so far and the requests they carried; their ratio is the
/// group-commit batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    pub commits: u64,
    pub requests: u64,
    /// Syncs of the log (with `Durability::Fsync`; each answers every
    /// commit made before it began).
    pub syncs: u64,
}

#[async_trait::async_trait]
impl nimbus_store::Store for SqliteStore {
    fn observe(&self, observer: Arc<dyn nimbus_store::StoreObserver>) {
        let _ = self.writer.counters().observer.set(observer);
    }

    fn location(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn signals(&self) -> &nimbus_store::QueueSignals {
        &self.signals
    }

    /// An empty request through the writer: answered once the writer thread
    /// has committed the batch carrying it, so a wedged or stopped writer
    /// fails (or, with the caller's timeout, does not answer).
    async fn ping(&self) -> StoreResult<()> {
        self.writer.run(|_| Ok(())).await
    }

    async fn now_ms(&self) -> StoreResult<Timestamp> {
        self.writer.run(|tx| Ok(tx.now)).await
    }
}

impl SqliteStore {
    pub fn commit_stats(&self) -> CommitStats {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = self.writer.counters();
        CommitStats {
            commits: counters.commits.load(Relaxed),
            requests: counters.requests.load(Relaxed),
            syncs: counters.syncs.load(Relaxed),
        }
    }
}

/// Error text from the backend, without its types.
pub(crate) fn backend(e: impl std::fmt::Display) -> nimbus_store::StoreError {
    nimbus_store::StoreError::Backend(e.to_string())
}
