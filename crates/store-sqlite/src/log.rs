//! The write-ahead log's slow work, kept off the writer thread: its sync,
//! which every acknowledgement waits for (the sync threads), and its
//! checkpoints into the database file (the checkpoint thread).

use crate::backend;
use crate::writer::{CommitCounters, Reply};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::Connection;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Makes everything written to the log so far durable.
pub(crate) type SyncFn = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// What a request fails with once a sync of the log has failed.
pub(crate) const SYNC_FAILED: &str = "the disk failed to sync the store's log: restart nimbus";

/// Syncs of `conn`'s write-ahead log (`PATH-wal`, which SQLite keeps while
/// the connection is open), one per sync thread, each on a descriptor of
/// its own: Linux reports a failed write-back once to each open file, so
/// every sync that covers a page the disk failed to write says so, however
/// the syncs overlap. The directory is synced once here, so the log's name
/// is as durable as what it holds (SQLite syncs the directory at its first
/// sync of a new log, which at `synchronous=NORMAL` may come only with the
/// first checkpoint).
pub(crate) fn log_syncs(conn: &Connection, path: &Path, count: usize) -> StoreResult<Vec<SyncFn>> {
    let log_path = log_path(conn, path);
    let dir = log_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(backend)?;
    (0..count)
        .map(|_| {
            let log = std::fs::File::open(&log_path).map_err(backend)?;
            log.sync_data().map_err(backend)?;
            Ok(Box::new(move || log.sync_data()) as SyncFn)
        })
        .collect()
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
pub(crate) type OnSyncFailure = Box<dyn Fn() + Send + Sync>;

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

/// Sync threads a store runs. With one, a commit handed over during a sync
/// waited for that sync to end before its own began: a queue receive woken
/// by a send waited for the send's sync and then its own. With two, its
/// sync begins at once (Linux overlaps syncs of one file). Measured here
/// (BENCHMARKS.md): the median from send to function start went from 0.21
/// to 0.04 ms, and 16 queue clients moved 8% more messages; four threads
/// added syncs the disk then answered more slowly, and did no better.
pub(crate) const SYNC_THREADS: usize = 2;

/// The sync threads: each takes every commit handed over since the last
/// sync began, syncs the log once for all of them, then answers every
/// commit that sync covers. A thread is free to begin a sync while others
/// run, so a commit's sync begins as soon as it is handed over, and a
/// sync that stalls holds up only the commits no later sync covers: a sync
/// covers every commit made before it began, whichever ends first. A
/// failed sync answers everything waiting with the error and calls
/// `on_failure` ([`stop_the_process`] in a server); should the process go
/// on, the store takes no more writes and nothing is answered as synced.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<SyncState>,
    /// Wakes an idle thread: a commit to sync or answer, or the end.
    work: Condvar,
    failed: AtomicBool,
    on_failure: OnSyncFailure,
    counters: Arc<CommitCounters>,
}

/// Commits are numbered from 1 in the order they are handed over.
#[derive(Default)]
struct SyncState {
    /// Commits not yet answered, oldest first, each with the number of
    /// the commit whose sync it waits for: its own if it wrote, else the
    /// last one before it that wrote (what it read may be theirs), 0 if
    /// none did.
    waiting: VecDeque<(u64, Committed)>,
    handed_over: u64,
    last_write: u64,
    /// The last commit a sync has begun after.
    sync_begun: u64,
    /// The last commit a finished sync covers.
    synced: u64,
    closed: bool,
}

/// Marks the store failed if a sync thread ends by a panic (an observer's,
/// say): its commits can no longer be answered, so none may be made. It
/// answers everything waiting with the error itself rather than leave that
/// to the other threads: the same panic may end them all, and a request
/// must not wait forever.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let waiting: Vec<Committed> = {
                // Set under the lock, so a commit handed over from now on
                // sees it ([`Syncer::hand_over`]) and none is left behind.
                let mut state = self.0.lock();
                self.0.failed.store(true, Ordering::Release);
                state.waiting.drain(..).map(|(_, commit)| commit).collect()
            };
            answer(&self.0, waiting, true);
            self.0.work.notify_all();
        }
    }
}

impl Syncer {
    /// One thread per sync in `syncs`.
    pub(crate) fn start(
        syncs: Vec<SyncFn>,
        on_failure: OnSyncFailure,
        counters: Arc<CommitCounters>,
    ) -> StoreResult<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(SyncState::default()),
            work: Condvar::new(),
            failed: AtomicBool::new(false),
            on_failure,
            counters,
        });
        // Dropped on an error, which ends the threads already started.
        let mut syncer = Syncer {
            shared,
            threads: Vec::new(),
        };
        for sync in syncs {
            let shared = syncer.shared.clone();
            let thread = std::thread::Builder::new()
                .name("nimbus-store-sync".into())
                .spawn(move || sync_thread(&shared, sync))
                .map_err(backend)?;
            syncer.threads.push(thread);
        }
        Ok(syncer)
    }

    /// Whether a sync has failed: then nothing more may be written.
    pub(crate) fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Hands a commit over, to be answered once a sync that began after it
    /// ends (or, if it wrote nothing, once the writes before it are synced).
    pub(crate) fn hand_over(&self, commit: Committed) {
        let mut state = self.shared.lock();
        if self.shared.failed.load(Ordering::Acquire) {
            // Answered here: after a panic no sync thread may be left.
            drop(state);
            answer(&self.shared, vec![commit], true);
            return;
        }
        state.handed_over += 1;
        if commit.wrote {
            state.last_write = state.handed_over;
        }
        let waits_for = state.last_write;
        state.waiting.push_back((waits_for, commit));
        drop(state);
        self.shared.work.notify_one();
    }

    /// Answers what was handed over, then ends the threads.
    pub(crate) fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        // A panic while the lock is held (none is expected: the lock is
        // never held across a sync or an answer) leaves the state whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn sync_thread(shared: &Arc<Shared>, mut sync: SyncFn) {
    let _guard = FailOnPanic(shared.clone());
    let mut state = shared.lock();
    loop {
        let failed = shared.failed.load(Ordering::Acquire);
        // Whatever can be answered now, oldest first.
        let ready = state
            .waiting
            .iter()
            .take_while(|(waits_for, _)| failed || *waits_for <= state.synced)
            .count();
        if ready > 0 {
            let answered: Vec<Committed> = state
                .waiting
                .drain(..ready)
                .map(|(_, commit)| commit)
                .collect();
            drop(state);
            answer(shared, answered, failed);
            state = shared.lock();
        } else if !failed && state.last_write > state.sync_begun {
            let covers = state.last_write;
            state.sync_begun = covers;
            drop(state);
            let began = Instant::now();
            let synced = sync();
            shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
            if synced.is_ok()
                && let Some(observer) = shared.counters.observer.get()
            {
                observer.log_synced(began.elapsed());
            }
            state = shared.lock();
            match synced {
                Ok(()) => state.synced = state.synced.max(covers),
                Err(e) => {
                    tracing::error!("store log sync failed: {e}");
                    shared.failed.store(true, Ordering::Release);
                    drop(state);
                    (shared.on_failure)();
                    state = shared.lock();
                }
            }
        } else if state.closed {
            // What is left waits for a sync another thread is in.
            return;
        } else {
            state = shared.work.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn answer(shared: &Shared, commits: Vec<Committed>, failed: bool) {
    let outcome = if failed {
        Err(StoreError::Backend(SYNC_FAILED.into()))
    } else {
        Ok(())
    };
    for commit in commits {
        if !failed && let Some(observer) = shared.counters.observer.get() {
            observer.committed(commit.replies.len(), commit.started.elapsed());
        }
        for reply in commit.replies {
            reply(outcome.clone());
        }
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
