//! The write-ahead log's slow work, kept off the writer thread: its sync,
//! which every acknowledgement waits for (the sync thread), and its
//! checkpoints into the database file (the checkpoint thread).

use crate::backend;
use crate::writer::{CommitCounters, Reply};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Makes everything written to the log so far durable.
pub(crate) type SyncFn = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// What a request fails with once a sync of the log has failed.
pub(crate) const SYNC_FAILED: &str = "the disk failed to sync the store's log: restart nimbus";

/// The sync of `conn`'s write-ahead log (`PATH-wal`, which SQLite keeps
/// while the connection is open). The directory is synced once here, so the
/// log's name is as durable as what it holds (SQLite syncs the directory at
/// its first sync of a new log, which at `synchronous=NORMAL` may come only
/// with the first checkpoint).
pub(crate) fn log_sync(conn: &Connection, path: &Path) -> StoreResult<SyncFn> {
    let log_path = log_path(conn, path);
    let log = std::fs::File::open(&log_path).map_err(backend)?;
    let dir = log_path
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
    /// Whether the commit appended to the log. One that did not (its
    /// requests only read) needs no sync of its own; it is answered once
    /// every commit handed over before it is synced, since what it read may
    /// be theirs.
    pub wrote: bool,
}

/// What the process does when a sync of the log fails.
pub(crate) type OnSyncFailure = Box<dyn Fn() + Send>;

/// Stops the process after a failed sync of the log. Linux may have marked
/// the pages it could not write clean: a later sync would succeed without
/// writing them, and a checkpoint (the checkpoint thread's, the writer's,
/// the one at close) could copy them into the database file, so that after
/// a power cut the surviving start of the log would be replayed over newer
/// pages. As PostgreSQL does, the process stops at once, having answered
/// nothing that was not synced; the next start recovers from the file.
pub(crate) fn stop_the_process() {
    eprintln!("nimbus: {SYNC_FAILED}; stopping so that nothing unsynced is checkpointed");
    std::process::abort();
}

/// The sync thread: takes every commit made since its last sync, syncs the
/// log once for all of them, then answers them. A failed sync answers them
/// with the error and calls its `on_failure` ([`stop_the_process`] in a
/// server); should the process go on, the store takes no more writes.
pub(crate) struct Syncer {
    commits: std::sync::mpsc::Sender<Committed>,
    failed: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Marks the store failed if the sync thread ends by a panic (an observer's,
/// say): its commits can no longer be answered, so none may be made.
struct FailOnPanic(Arc<AtomicBool>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

impl Syncer {
    pub(crate) fn start(
        mut sync: SyncFn,
        on_failure: OnSyncFailure,
        counters: Arc<CommitCounters>,
    ) -> StoreResult<Self> {
        let (commits, waiting) = std::sync::mpsc::channel::<Committed>();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("nimbus-store-sync".into())
            .spawn(move || {
                let _guard = FailOnPanic(flag.clone());
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiting.try_iter());
                    // Commits come in order: when no commit of this batch
                    // wrote, every earlier one was synced by an earlier turn.
                    let outcome = if flag.load(Ordering::Acquire) {
                        Err(StoreError::Backend(SYNC_FAILED.into()))
                    } else if !batch.iter().any(|commit| commit.wrote) {
                        Ok(())
                    } else {
                        let synced = sync();
                        counters.syncs.fetch_add(1, Ordering::Relaxed);
                        synced.map_err(|e| {
                            tracing::error!("store log sync failed: {e}");
                            flag.store(true, Ordering::Release);
                            StoreError::Backend(SYNC_FAILED.into())
                        })
                    };
                    if outcome.is_err() {
                        on_failure();
                    }
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
        Ok(Syncer {
            commits,
            failed,
            thread,
        })
    }

    /// Whether a sync has failed: then nothing more may be written.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Hands a commit over, to be answered after the next sync.
    pub(crate) fn hand_over(&self, commit: Committed) {
        // The sync thread outlives the writer unless it panicked (then the
        // store is marked failed): the requests fail as their answers drop.
        let _ = self.commits.send(commit);
    }

    /// Answers what was handed over, then ends the thread.
    pub(crate) fn finish(self) {
        drop(self.commits);
        let _ = self.thread.join();
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

/// The writer's side of the checkpoint thread ([`start_checkpoints`]).
pub(crate) struct Checkpoints {
    wake: std::sync::mpsc::SyncSender<()>,
    /// Held by whoever checkpoints: a checkpoint begun while another runs
    /// fails at once (SQLite calls no busy handler for it), so the writer,
    /// past its bound, waits here for the thread's to end instead.
    turn: Arc<Mutex<()>>,
}

/// Moves checkpoints off the writer thread. SQLite's automatic checkpoint
/// runs inside the commit that crosses its threshold, so that commit (and
/// every request waiting behind it) waited for the log's sync, the copy into
/// the database file and that file's sync. Instead each commit reports the
/// log's size ([`watch_log`]) and, past [`CHECKPOINT_PAGES`], wakes the
/// checkpoint thread started here, which runs a passive checkpoint on a
/// connection of its own: it copies what is synced while the writer goes
/// on, and once it has copied everything, the writer's next commit starts
/// the log again from its beginning.
///
/// The thread ends when the waker returned is dropped (with the writer's
/// connection and its hook); the handle returned is for joining it.
pub(crate) fn start_checkpoints(
    writer: &Connection,
    path: &Path,
) -> StoreResult<(std::thread::JoinHandle<()>, Checkpoints)> {
    let checkpointer = Connection::open(db_path(writer, path)).map_err(backend)?;
    checkpointer
        .execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(backend)?;
    let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
    let turn = Arc::new(Mutex::new(()));
    let ours = turn.clone();
    let thread = std::thread::Builder::new()
        .name("nimbus-store-checkpoint".into())
        .spawn(move || {
            while woken.recv().is_ok() {
                let _turn = ours.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = checkpointer
                    .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE)
                {
                    tracing::warn!("store checkpoint failed: {e}");
                }
            }
        })
        .map_err(backend)?;
    Ok((thread, Checkpoints { wake, turn }))
}

/// Installs the writer's log hook (`sqlite3_wal_hook`, which replaces
/// SQLite's automatic checkpoint): after every commit that appended to the
/// log it counts that commit in the counter returned, and checkpoints as
/// [`start_checkpoints`] says (waking `checkpoints` if given). A commit that
/// appended nothing (a batch of reads) leaves the counter as it was, so the
/// sync thread knows it has nothing to sync for it.
pub(crate) fn watch_log(
    writer: &mut Connection,
    checkpoints: Option<Checkpoints>,
) -> StoreResult<Arc<AtomicU64>> {
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    writer
        .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            count.fetch_add(1, Ordering::Relaxed);
            if pages >= WRITER_CHECKPOINT_PAGES {
                // After the thread's checkpoint, if one runs: the writer's
                // then copies what is left, so the next commit starts the
                // log from its beginning and the log stays within the bound
                // however slowly the thread's checkpoints go.
                let _turn = checkpoints
                    .as_ref()
                    .map(|c| c.turn.lock().unwrap_or_else(|e| e.into_inner()));
                // An error here must not fail the statement: its commit
                // stands, and the next commit tries again.
                if let Err(e) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE) {
                    tracing::warn!("store checkpoint at commit failed: {e}");
                }
            } else if pages >= CHECKPOINT_PAGES
                && let Some(checkpoints) = &checkpoints
            {
                // Already awake or waking: nothing to add.
                let _ = checkpoints.wake.try_send(());
            }
            Ok(())
        }))
        .map_err(backend)?;
    Ok(written)
}
