//! The write-ahead log's slow work, kept off the writer thread: its sync,
//! which every acknowledgement waits for (the sync thread), and its
//! checkpoints into the database file (the checkpoint thread).

use crate::backend;
use crate::writer::{CommitCounters, Reply};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Makes everything written to the log so far durable.
pub(crate) type SyncFn = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// What a request fails with once a sync of the log has failed.
pub(crate) const SYNC_FAILED: &str = "the disk failed to sync the store's log: restart nimbus";

/// The sync of `conn`'s write-ahead log (`PATH-wal`, which SQLite keeps
/// while the connection is open). The directory is synced once here, so the
/// log's name is as durable as what it holds (SQLite would sync it at its
/// first sync of the log, which `synchronous=NORMAL` never makes).
pub(crate) fn log_sync(conn: &Connection, path: &Path) -> StoreResult<SyncFn> {
    let log = std::fs::File::open(log_path(conn, path)).map_err(backend)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(backend)?;
    log.sync_data().map_err(backend)?;
    Ok(Box::new(move || log.sync_data()))
}

/// The database file `conn` has open, or `path` if SQLite does not say.
fn db_path(conn: &Connection, path: &Path) -> std::path::PathBuf {
    conn.path()
        .filter(|p| !p.is_empty())
        .map_or_else(|| path.to_path_buf(), std::path::PathBuf::from)
}

fn log_path(conn: &Connection, path: &Path) -> std::path::PathBuf {
    let mut log = db_path(conn, path).into_os_string();
    log.push("-wal");
    log.into()
}

/// A commit waiting for the sync that makes it durable.
pub(crate) struct Committed {
    pub replies: Vec<Reply>,
    pub started: Instant,
}

/// The sync thread: takes every commit made since its last sync, syncs the
/// log once for all of them, then answers them. A failed sync answers them
/// with the error and stops the store taking writes: what is in the log is
/// no longer known to be on disk, so nothing after it may be acknowledged
/// (as PostgreSQL does, the process must restart and recover from the file).
pub(crate) struct Syncer {
    commits: std::sync::mpsc::Sender<Committed>,
    failed: Arc<AtomicBool>,
}

impl Syncer {
    pub(crate) fn start(mut sync: SyncFn, counters: Arc<CommitCounters>) -> StoreResult<Self> {
        let (commits, waiting) = std::sync::mpsc::channel::<Committed>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::Builder::new()
            .name("nimbus-store-sync".into())
            .spawn(move || {
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiting.try_iter());
                    let outcome = if flag.load(Ordering::Acquire) {
                        Err(StoreError::Backend(SYNC_FAILED.into()))
                    } else {
                        sync().map_err(|e| {
                            tracing::error!("store log sync failed: {e}");
                            flag.store(true, Ordering::Release);
                            StoreError::Backend(SYNC_FAILED.into())
                        })
                    };
                    for commit in batch {
                        if outcome.is_ok()
                            && let Some(observer) = counters.observer.get()
                        {
                            observer.committed(commit.replies.len(), commit.started.elapsed());
                        }
                        for reply in commit.replies {
                            reply(outcome.clone());
                        }
                    }
                }
            })
            .map_err(backend)?;
        Ok(Syncer { commits, failed })
    }

    /// Whether a sync has failed: then nothing more may be written.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Hands a commit over, to be answered after the next sync.
    pub(crate) fn hand_over(&self, commit: Committed) {
        // The sync thread outlives the writer unless it panicked; then
        // nothing can be acknowledged, and the requests fail as their
        // answers are dropped.
        let _ = self.commits.send(commit);
    }
}

/// Log pages after which a commit asks the checkpoint thread to copy the
/// log into the database file (SQLite's own automatic checkpoint point).
const CHECKPOINT_PAGES: i32 = 1000;
/// Log pages past which the writer checkpoints by itself: the log must not
/// grow without bound. The log starts again from its beginning only at a
/// commit that begins when all of it is copied; under a writer that never
/// pauses, that moment rarely comes between two commits, so the writer
/// makes it (by then the checkpoint thread has copied nearly everything, so
/// this is the two syncs and little more, every 16 MiB of log).
pub(crate) const WRITER_CHECKPOINT_PAGES: i32 = 4 * CHECKPOINT_PAGES;

/// Moves checkpoints off the writer thread. SQLite's automatic checkpoint
/// runs inside the commit that crosses its threshold, so that commit (and
/// every request waiting behind it) waited for the log's sync, the copy into
/// the database file and that file's sync. Instead each commit reports the
/// log's size (`sqlite3_wal_hook`, which replaces the automatic checkpoint)
/// and, past [`CHECKPOINT_PAGES`], wakes the checkpoint thread, which runs a
/// passive checkpoint on a connection of its own: it copies what is synced
/// while the writer goes on, and once it has copied everything, the writer's
/// next commit starts the log again from its beginning.
pub(crate) fn start_checkpoints(writer: &mut Connection, path: &Path) -> StoreResult<()> {
    let checkpointer = Connection::open(db_path(writer, path)).map_err(backend)?;
    checkpointer
        .execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(backend)?;
    let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("nimbus-store-checkpoint".into())
        .spawn(move || {
            // Ends when the writer's connection (and its hook) is dropped.
            while woken.recv().is_ok() {
                if let Err(e) = checkpointer
                    .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE)
                {
                    tracing::warn!("store checkpoint failed: {e}");
                }
            }
        })
        .map_err(backend)?;
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if pages >= WRITER_CHECKPOINT_PAGES {
                // An error here would fail a statement whose commit stands;
                // a checkpoint that cannot run now runs at a later commit.
                let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE);
            } else if pages >= CHECKPOINT_PAGES {
                // Already awake or waking: nothing to add.
                let _ = wake.try_send(());
            }
            Ok(())
        }))
        .map_err(backend)
}
