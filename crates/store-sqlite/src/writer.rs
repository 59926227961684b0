//! The writer thread and group commit. Requests queue on a bounded channel;
//! the thread takes everything waiting (up to `MAX_BATCH`), runs each request
//! in its own savepoint inside one transaction, commits once, and only then
//! answers every request with the commit's outcome. With
//! [`Durability::Fsync`] the answers wait for the sync threads
//! ([`crate::log`]): SQLite commits to the write-ahead log without syncing
//! it (`synchronous=NORMAL`), and a sync thread syncs the log and answers
//! every commit made before that sync began, while the writer thread runs
//! the next batch. So the disk's sync time is off the writer's path, and
//! nothing is acknowledged before it is on disk. A commit that wrote
//! nothing (its requests only read) adds no sync of its own.

use crate::log::{Committed, OnSyncFailure, SYNC_FAILED, SYNC_THREADS, SyncFn, Syncer};
use crate::{Durability, SqliteOptions, backend};
use nimbus_store::StoreObserver;
use nimbus_store::{Clock, QueueSignals, StoreError, StoreResult, Timestamp};
use rusqlite::Connection;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Requests one commit may carry.
const MAX_BATCH: usize = 512;
/// Requests waiting for the writer before senders wait too.
const MAX_PENDING: usize = 4096;

/// What a request sees: the connection inside the open transaction, and the
/// store's clock reading for the whole batch.
pub(crate) struct Tx<'a> {
    pub conn: &'a Connection,
    pub now: Timestamp,
    /// Dead-letter moves made in this transaction, reported once it commits.
    pub dead_lettered: RefCell<Vec<String>>,
    /// Signal names (queues sent to, streams written) to wake once it commits.
    pub signalled: RefCell<Vec<String>>,
    /// Queue settings, kept across transactions on this thread.
    pub queue_configs: &'a crate::queue::ConfigCache,
    /// Set when a request without a savepoint ([`Writer::run_without_savepoint`])
    /// failed after changing something it cannot take back alone: then
    /// nothing of the batch commits.
    pub doomed: std::cell::Cell<bool>,
}

impl Tx<'_> {
    /// Wakes waiters on `name` once this transaction commits.
    pub(crate) fn signal(&self, name: &str) {
        self.signalled.borrow_mut().push(name.to_owned());
    }
}

impl Tx<'_> {
    /// Runs a statement through the connection's statement cache: every
    /// request repeats the same few statements, so they are parsed once.
    /// (A `LIMIT` or `OFFSET` is bound as `+?N`, never `?N`, and so is an
    /// equality beside an `ORDER BY` in the hot reads: SQLite plans for the
    /// value of a bare parameter there and prepares the statement again
    /// each time one is bound, which cost every receive a parse and a
    /// plan. The unary plus keeps the plan and the index.)
    pub(crate) fn execute(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute(params)
    }

    /// [`Tx::execute`] for a statement that returns one row.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.conn.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Distinct statements the store keeps prepared.
const STATEMENT_CACHE: usize = 64;

pub(crate) type Reply = Box<dyn FnOnce(StoreResult<()>) + Send>;
/// `None` when the batch's transaction could not begin.
type Job = Box<dyn FnOnce(Option<&Tx<'_>>) -> Reply + Send>;

pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    stats: Arc<CommitCounters>,
    /// Joined on drop, so the file is closed (and its log checkpointed)
    /// before the store is gone: a store opened again at once finds it so.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop once it has run what
        // was sent; it then ends the sync and checkpoint threads.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many commits the writer made and how many requests they carried.
#[derive(Default)]
pub(crate) struct CommitCounters {
    pub commits: AtomicU64,
    pub requests: AtomicU64,
    pub syncs: AtomicU64,
    /// Set once, by whoever wants to hear about commits.
    pub observer: OnceLock<Arc<dyn StoreObserver>>,
}

impl Writer {
    pub(crate) fn start(
        options: &SqliteOptions,
        clock: Arc<dyn Clock>,
        signals: QueueSignals,
    ) -> StoreResult<Self> {
        if let Some(dir) = options.path.parent() {
            std::fs::create_dir_all(dir).map_err(backend)?;
        }
        let conn = Connection::open(&options.path).map_err(backend)?;
        // NORMAL either way: a commit writes the log without syncing it
        // (SQLite syncs it before each checkpoint, so a crash loses at most
        // the last commits, never the file); with `Fsync` a sync thread
        // syncs it before any answer.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(backend)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        crate::schema::migrate(&conn)?;
        let checkpoints = crate::log::start_checkpoints(&conn, &options.path)?;
        let sync = match options.durability {
            Durability::Fsync => Some((
                crate::log::log_syncs(&conn, &options.path, SYNC_THREADS)?,
                Box::new(crate::log::stop_the_process) as OnSyncFailure,
            )),
            Durability::RelaxedMayLoseRecentWrites => None,
        };
        Self::spawn(conn, clock, signals, sync, Some(checkpoints))
    }

    /// Starts the writer thread on `conn`, and a sync thread for each sync
    /// `sync` gives: what makes the log durable, and what to do if it fails.
    fn spawn(
        mut conn: Connection,
        clock: Arc<dyn Clock>,
        signals: QueueSignals,
        sync: Option<(Vec<SyncFn>, OnSyncFailure)>,
        checkpoints: Option<(std::thread::JoinHandle<()>, crate::log::Checkpoints)>,
    ) -> StoreResult<Self> {
        let (checkpoints, wake) = checkpoints.unzip();
        let written = crate::log::watch_log(&mut conn, wake)?;
        let (jobs, receiver) = mpsc::channel(MAX_PENDING);
        let stats = Arc::new(CommitCounters::default());
        let counters = stats.clone();
        let syncer = match sync {
            Some((syncs, on_failure)) => Some(Syncer::start(syncs, on_failure, stats.clone())?),
            None => None,
        };
        let thread = std::thread::Builder::new()
            .name("nimbus-store-writer".into())
            .spawn(move || {
                let log = Log {
                    written: &written,
                    syncer: syncer.as_ref(),
                };
                run(&conn, receiver, clock, &counters, &signals, log);
                // The connection first: that drops its log hook, which ends
                // the checkpoint thread, whose connection closes last.
                drop(conn);
                if let Some(syncer) = syncer {
                    syncer.finish();
                }
                if let Some(checkpoints) = checkpoints {
                    let _ = checkpoints.join();
                }
            })
            .map_err(backend)?;
        Ok(Writer {
            jobs,
            stats,
            thread: Some(thread),
        })
    }

    pub(crate) fn counters(&self) -> &CommitCounters {
        &self.stats
    }

    /// Runs `work` in the next commit and returns its result once that commit
    /// is durable. If the commit fails, so does the request. The work runs
    /// in a savepoint of its own, so if it fails, what it changed is undone
    /// and the rest of the batch commits.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run_as(Guard::Savepoint, work).await
    }

    /// [`Writer::run`] without the savepoint, for work that fails, if at
    /// all, before it changes anything or by the one statement that does
    /// (SQLite undoes a failed statement by itself): a queue's send of one
    /// message, its receive of one and its delete. The savepoint costs each
    /// request two statements more and a copy of every page it changes
    /// first, which at 64 clients was a tenth of the writer thread's time
    /// per message. Should such work fail after a change all the same,
    /// nothing of its batch commits and every request in the batch fails.
    pub(crate) async fn run_without_savepoint<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run_as(Guard::ChangesNothingIfItFails, work).await
    }

    async fn run_as<T: Send + 'static>(
        &self,
        guard: Guard,
        work: impl FnOnce(&Tx<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = match tx {
                Some(tx) => guarded(tx, guard, work),
                None => Err(StoreError::Backend(
                    "the transaction could not begin".into(),
                )),
            };
            Box::new(move |commit: StoreResult<()>| {
                let _ = sender.send(commit.and(result));
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        receiver.await.map_err(|_| StoreError::Closed)?
    }
}

/// How a request's changes are undone if it fails.
#[derive(Clone, Copy)]
enum Guard {
    /// By a savepoint around the request.
    Savepoint,
    /// Not at all: the request promises to fail only before it changes
    /// anything ([`Writer::run_without_savepoint`]).
    ChangesNothingIfItFails,
}

fn guarded<T>(
    tx: &Tx<'_>,
    guard: Guard,
    work: impl FnOnce(&Tx<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    if let Guard::Savepoint = guard {
        // Prepared once, like every statement: these run twice per request.
        tx.execute("SAVEPOINT request", []).map_err(backend)?;
    }
    let moves_before = tx.dead_lettered.borrow().len();
    let signals_before = tx.signalled.borrow().len();
    let changes_before = tx.conn.total_changes();
    let result = work(tx);
    if result.is_err() {
        tx.dead_lettered.borrow_mut().truncate(moves_before);
        tx.signalled.borrow_mut().truncate(signals_before);
        tx.queue_configs.clear();
    }
    match guard {
        Guard::Savepoint => {
            if result.is_err() {
                tx.execute("ROLLBACK TO request", []).map_err(backend)?;
            }
            tx.execute("RELEASE request", []).map_err(backend)?;
        }
        Guard::ChangesNothingIfItFails => {
            // Rows a statement that failed had changed are not counted.
            if result.is_err() && tx.conn.total_changes() != changes_before {
                tracing::error!("a store request failed after a change: its batch is rolled back");
                tx.doomed.set(true);
            }
        }
    }
    result
}

/// What the writer thread knows of the log: how many commits appended to
/// it ([`crate::log::watch_log`]), and the sync threads, if commits wait for one.
struct Log<'a> {
    written: &'a AtomicU64,
    syncer: Option<&'a Syncer>,
}

fn run(
    conn: &Connection,
    mut receiver: mpsc::Receiver<Job>,
    clock: Arc<dyn Clock>,
    counters: &CommitCounters,
    signals: &QueueSignals,
    log: Log<'_>,
) {
    let syncer = log.syncer;
    let queue_configs = crate::queue::ConfigCache::default();
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(syncer) = syncer
            && syncer.failed()
        {
            for job in batch {
                job(None)(Err(StoreError::Backend(SYNC_FAILED.into())));
            }
            continue;
        }
        let started = Instant::now();
        let began = conn.execute_batch("BEGIN IMMEDIATE").map_err(backend);
        let tx = Tx {
            conn,
            now: clock.now_ms(),
            dead_lettered: RefCell::new(Vec::new()),
            signalled: RefCell::new(Vec::new()),
            queue_configs: &queue_configs,
            doomed: std::cell::Cell::new(false),
        };
        let replies: Vec<Reply> = batch
            .into_iter()
            .map(|job| job(began.is_ok().then_some(&tx)))
            .collect();
        let written_before = log.written.load(Ordering::Relaxed);
        let committed = began.and_then(|()| {
            if tx.doomed.get() {
                Err(StoreError::Backend(
                    "a request in the same commit failed after a change it could not undo alone; \
                     nothing was committed: retry"
                        .into(),
                ))
            } else {
                conn.execute_batch("COMMIT").map_err(backend)
            }
        });
        let wrote = log.written.load(Ordering::Relaxed) != written_before;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(replies.len() as u64, Ordering::Relaxed);
        if let Err(e) = &committed {
            tracing::error!("store commit failed: {e}");
            let _ = conn.execute_batch("ROLLBACK");
            queue_configs.clear();
        } else {
            if let Some(observer) = counters.observer.get() {
                if syncer.is_none() {
                    observer.committed(replies.len(), started.elapsed());
                }
                for queue in tx.dead_lettered.take() {
                    observer.dead_lettered(&queue, 1);
                }
            }
            // Waking waiters before the sync is safe: what they do next is
            // a request of a later commit, answered after a later sync.
            let mut names = tx.signalled.take();
            names.sort_unstable();
            names.dedup();
            for name in names {
                signals.notify(&name);
            }
        }
        match (syncer, committed) {
            (Some(syncer), Ok(())) => syncer.hand_over(Committed {
                replies,
                started,
                wrote,
            }),
            (_, committed) => {
                for reply in replies {
                    reply(committed.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_store::SystemClock;

    async fn synchronous_mode(durability: Durability) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            path: dir.path().join("db"),
            durability,
        };
        let writer =
            Writer::start(&options, Arc::new(SystemClock), QueueSignals::default()).unwrap();
        writer
            .run(|tx| {
                tx.conn
                    .query_row("PRAGMA synchronous", [], |row| row.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap()
    }

    /// How often the cached `sql` was prepared again after binding limits of
    /// 1, 2 and 3 in turn.
    fn reprepares(conn: &Connection, sql: &str) -> i32 {
        for limit in 1..=3 {
            let mut statement = conn.prepare_cached(sql).unwrap();
            let rows = statement.query_map([limit], |row| row.get::<_, i64>(0));
            assert_eq!(rows.unwrap().count(), limit as usize);
        }
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn a_limit_bound_as_plus_parameter_keeps_its_prepared_plan() {
        let conn = Connection::open_in_memory().unwrap();
        let rows = "SELECT value FROM json_each('[1,2,3]') ORDER BY value";
        assert!(reprepares(&conn, &format!("{rows} LIMIT ?1")) >= 2);
        assert_eq!(reprepares(&conn, &format!("{rows} LIMIT +?1")), 0);
        // And no statement of this store binds a bare one.
        for (file, source) in [
            ("queue.rs", include_str!("queue.rs")),
            ("history.rs", include_str!("history.rs")),
            ("table.rs", include_str!("table.rs")),
            ("bucket.rs", include_str!("bucket.rs")),
            ("deployment.rs", include_str!("deployment.rs")),
            ("keys.rs", include_str!("keys.rs")),
            ("lease.rs", include_str!("lease.rs")),
            ("node.rs", include_str!("node.rs")),
            ("schedule.rs", include_str!("schedule.rs")),
            ("secret.rs", include_str!("secret.rs")),
        ] {
            for bare in ["LIMIT ?", "OFFSET ?"] {
                assert!(!source.contains(bare), "{file} binds `{bare}`");
            }
        }
    }

    #[tokio::test]
    async fn receives_and_stream_reads_reuse_their_prepared_statements() {
        use nimbus_store::{
            QueueConfig, QueueStore as _, SendMessage, TableConfig, TableStore as _,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(
            &SqliteOptions {
                path: dir.path().join("db"),
                durability: Durability::Fsync,
            },
            Arc::new(SystemClock),
        )
        .unwrap();
        let queue = |name: &str| QueueConfig {
            name: name.into(),
            visibility_timeout_ms: 30_000,
            retention_ms: 3_600_000,
            delay_ms: 0,
            max_message_bytes: 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        };
        store
            .declare_queues(&[queue("a"), queue("b")])
            .await
            .unwrap();
        store
            .declare_tables(&[TableConfig {
                name: "t".into(),
                partition_key: "pk".into(),
                sort_key: None,
                stream: Some(nimbus_store::StreamView::NewImage),
                stream_retention_ms: 3_600_000,
                max_item_bytes: 1024,
            }])
            .await
            .unwrap();
        for (i, name) in ["a", "b", "a", "b"].into_iter().enumerate() {
            let message = SendMessage {
                body: vec![b'x'],
                ..SendMessage::default()
            };
            store.send(name, vec![message]).await.unwrap();
            store.receive(name, 1 + i as u32, None).await.unwrap();
            store.read_stream("t", i as u64, 10, None).await.unwrap();
        }
        let reprepared = store
            .writer
            .run(|tx| {
                [crate::queue::RECEIVE, crate::table::READ_STREAM]
                    .map(|sql| {
                        tx.conn
                            .prepare_cached(sql)
                            .map(|s| s.get_status(rusqlite::StatementStatus::RePrepare))
                    })
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(reprepared, [0, 0]);
    }

    #[tokio::test]
    async fn sqlite_itself_never_syncs_at_commit() {
        assert_eq!(synchronous_mode(Durability::Fsync).await, 1);
        assert_eq!(
            synchronous_mode(Durability::RelaxedMayLoseRecentWrites).await,
            1
        );
    }

    /// A writer on a scratch file whose log sync is `sync`, and whose
    /// failed sync calls `on_failure` instead of stopping the process.
    fn writer_with_sync(
        dir: &tempfile::TempDir,
        sync: SyncFn,
        on_failure: OnSyncFailure,
    ) -> Writer {
        writer_with_syncs(dir, vec![sync], on_failure)
    }

    /// [`writer_with_sync`] with a sync thread for each of `syncs`.
    fn writer_with_syncs(
        dir: &tempfile::TempDir,
        syncs: Vec<SyncFn>,
        on_failure: OnSyncFailure,
    ) -> Writer {
        let conn = Connection::open(dir.path().join("db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE t (v INTEGER);",
        )
        .unwrap();
        Writer::spawn(
            conn,
            Arc::new(SystemClock),
            QueueSignals::default(),
            Some((syncs, on_failure)),
            None,
        )
        .unwrap()
    }

    async fn insert(writer: &Writer, v: i64) -> StoreResult<()> {
        writer
            .run(move |tx| {
                tx.execute("INSERT INTO t (v) VALUES (?1)", [v])
                    .map(|_| ())
                    .map_err(backend)
            })
            .await
    }

    #[tokio::test]
    async fn a_write_is_answered_only_after_a_log_sync_that_began_after_its_commit() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        // The sync says when it begins, then waits to be let go.
        let (began, sync_began) = std::sync::mpsc::channel::<()>();
        let (let_go, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Mutex::new(wait);
        let writer = writer_with_sync(
            &dir,
            Box::new(move || {
                let _ = began.send(());
                let _ = wait.lock().unwrap().recv();
                Ok(())
            }),
            Box::new(|| panic!("no sync fails here")),
        );
        // Let go before the writer is dropped, even if an assertion fails,
        // or dropping it would wait for this sync forever.
        let let_go = let_go;
        let mut write = std::pin::pin!(insert(&writer, 7));
        let mut cx = Context::from_waker(Waker::noop());
        // The first poll hands the request to the writer.
        assert!(write.as_mut().poll(&mut cx).is_pending());
        // (Blocking this thread holds nothing up: the writer and the sync
        // are threads of their own.)
        sync_began.recv().unwrap();
        // The sync began after the commit: another connection sees the row.
        let other = Connection::open(dir.path().join("db")).unwrap();
        let seen: i64 = other
            .query_row("SELECT count(*) FROM t WHERE v = 7", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, 1);
        // But the write is not answered while its sync runs (an answer
        // given at the commit would be waiting for this poll already).
        assert!(write.as_mut().poll(&mut cx).is_pending());
        let_go.send(()).unwrap();
        write.await.unwrap();
    }

    /// A request that only reads.
    async fn count(writer: &Writer, ran: Option<std::sync::mpsc::Sender<()>>) -> i64 {
        writer
            .run(move |tx| {
                if let Some(ran) = ran {
                    let _ = ran.send(());
                }
                tx.query_row("SELECT count(*) FROM t", [], |row| row.get(0))
                    .map_err(backend)
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_read_syncs_nothing_itself_but_waits_for_the_sync_of_the_writes_before_it() {
        use std::future::Future as _;
        use std::sync::atomic::AtomicBool;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(AtomicU64::new(0));
        let hold = Arc::new(AtomicBool::new(false));
        let (began, sync_began) = std::sync::mpsc::channel::<()>();
        let (let_go, wait) = std::sync::mpsc::channel::<()>();
        let wait = std::sync::Mutex::new(wait);
        let writer = {
            let (syncs, hold) = (syncs.clone(), hold.clone());
            writer_with_sync(
                &dir,
                Box::new(move || {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    if hold.load(Ordering::SeqCst) {
                        let _ = began.send(());
                        let _ = wait.lock().unwrap().recv();
                    }
                    Ok(())
                }),
                Box::new(|| panic!("no sync fails here")),
            )
        };
        let let_go = let_go;
        // Nothing written yet: the read is answered with no sync at all.
        assert_eq!(count(&writer, None).await, 0);
        assert_eq!(syncs.load(Ordering::SeqCst), 0);
        insert(&writer, 1).await.unwrap();
        assert_eq!(syncs.load(Ordering::SeqCst), 1);

        // A write whose sync is held, then a read that sees its row.
        hold.store(true, Ordering::SeqCst);
        let mut cx = Context::from_waker(Waker::noop());
        let mut write = std::pin::pin!(insert(&writer, 2));
        assert!(write.as_mut().poll(&mut cx).is_pending());
        sync_began.recv().unwrap();
        let (ran, read_ran) = std::sync::mpsc::channel();
        let mut read = std::pin::pin!(count(&writer, Some(ran)));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        read_ran.recv().unwrap();
        // A request sent once the read ran goes in a later batch, so when it
        // runs, the read's batch has committed and been handed over.
        let (ran, probe_ran) = std::sync::mpsc::channel();
        let mut probe = std::pin::pin!(count(&writer, Some(ran)));
        assert!(probe.as_mut().poll(&mut cx).is_pending());
        probe_ran.recv().unwrap();
        // The read saw an unsynced row: it is not answered before that sync.
        assert!(read.as_mut().poll(&mut cx).is_pending());
        hold.store(false, Ordering::SeqCst);
        let_go.send(()).unwrap();
        write.await.unwrap();
        assert_eq!(read.await, 2);
        assert_eq!(probe.await, 2);
        // Two writes, two syncs: the reads added none.
        assert_eq!(syncs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_log_is_checkpointed_beside_the_writer_and_starts_again_from_its_beginning() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            path: dir.path().join("db"),
            durability: Durability::Fsync,
        };
        let writer =
            Writer::start(&options, Arc::new(SystemClock), QueueSignals::default()).unwrap();
        // The writer's connection never checkpoints by itself (below a
        // bound past this test's log)...
        let automatic: i64 = writer
            .run(|tx| {
                tx.conn
                    .execute_batch("CREATE TABLE pages (page BLOB)")
                    .and_then(|()| {
                        tx.conn
                            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
                    })
                    .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(automatic, 0);
        let log = dir.path().join("db-wal");
        let page = 4096u64;
        let writer = Arc::new(writer);
        // Each row takes four pages (a 16,000-byte value overflows), written
        // by 16 clients at once, so the writer seldom pauses.
        let write_rows = |n: usize| {
            let writer = writer.clone();
            async move {
                let mut clients = tokio::task::JoinSet::new();
                for _ in 0..16 {
                    let writer = writer.clone();
                    clients.spawn(async move {
                        for _ in 0..n / 16 {
                            writer
                                .run(|tx| {
                                    tx.execute(
                                        "INSERT INTO pages (page) VALUES (zeroblob(16000))",
                                        [],
                                    )
                                    .map(|_| ())
                                    .map_err(backend)
                                })
                                .await
                                .unwrap();
                        }
                    });
                }
                clients.join_all().await;
            }
        };
        // ...so past the checkpoint point (1,000 log pages, reached within
        // these 1,200 pages of rows), it is the checkpoint thread that copies
        // the log into the database file, hundreds of pages at once.
        write_rows(300).await;
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::metadata(dir.path().join("db")).unwrap().len() < 500 * page {
            assert!(Instant::now() < deadline, "nothing was checkpointed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // And the log starts again from its beginning instead of growing
        // without bound: when the checkpoints keep up with the writer, at a
        // commit that begins when all of it is copied; when they do not (a
        // slow disk), when the writer checkpoints past its bound. 9,600
        // pages more leave it within that bound and a few commits.
        write_rows(2_400).await;
        let size = std::fs::metadata(&log).unwrap().len();
        let bound = (crate::log::WRITER_CHECKPOINT_PAGES as u64 + 200) * (page + 24);
        assert!(size < bound, "the log grew to {size} bytes");
    }

    #[tokio::test]
    async fn a_failed_log_sync_fails_its_writes_and_every_write_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // The first sync fails, every later one would succeed.
        let syncs = AtomicU64::new(0);
        let stopped = Arc::new(AtomicU64::new(0));
        let stops = stopped.clone();
        let writer = writer_with_sync(
            &dir,
            Box::new(move || match syncs.fetch_add(1, Ordering::SeqCst) {
                0 => Err(std::io::Error::other("EIO")),
                _ => Ok(()),
            }),
            Box::new(move || {
                stops.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let failed = StoreError::Backend(SYNC_FAILED.into());
        // Committed to the log, but never known to be on disk: not
        // acknowledged, the process told to stop, and should it go on,
        // nothing after it is acknowledged either.
        assert_eq!(insert(&writer, 1).await, Err(failed.clone()));
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        assert_eq!(insert(&writer, 2).await, Err(failed));
    }

    /// Two sync threads whose first `held` syncs (counted across both) each
    /// say they began, with their number, then end as they are told; later
    /// syncs succeed at once. Returns the syncs, the numbers of those that
    /// began, and one sender per held sync to end it.
    #[allow(clippy::type_complexity)]
    fn held_syncs(
        held: usize,
    ) -> (
        Vec<SyncFn>,
        std::sync::mpsc::Receiver<usize>,
        Vec<std::sync::mpsc::Sender<std::io::Result<()>>>,
    ) {
        let calls = Arc::new(AtomicU64::new(0));
        let (began, began_rx) = std::sync::mpsc::channel::<usize>();
        let (ends, waits): (Vec<_>, Vec<_>) = (0..held).map(|_| std::sync::mpsc::channel()).unzip();
        let waits = Arc::new(std::sync::Mutex::new(
            waits.into_iter().map(Some).collect::<Vec<_>>(),
        ));
        let syncs = (0..2)
            .map(|_| {
                let (calls, began, waits) = (calls.clone(), began.clone(), waits.clone());
                Box::new(move || {
                    let n = calls.fetch_add(1, Ordering::SeqCst) as usize;
                    let wait = waits.lock().unwrap().get_mut(n).and_then(Option::take);
                    match wait {
                        Some(wait) => {
                            let _ = began.send(n);
                            wait.recv().unwrap_or(Ok(()))
                        }
                        None => Ok(()),
                    }
                }) as SyncFn
            })
            .collect();
        (syncs, began_rx, ends)
    }

    /// A bound on how long a request may take when nothing holds it up:
    /// the test fails, rather than hangs, if something does.
    async fn within<T>(request: impl Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(30), request)
            .await
            .expect("the request was held up")
    }

    #[tokio::test]
    async fn a_stalled_sync_holds_up_no_commit_that_a_later_sync_covers() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        let (syncs, began, ends) = held_syncs(1);
        let writer = writer_with_syncs(&dir, syncs, Box::new(|| panic!("no sync fails here")));
        // Dropped before the writer, even if an assertion fails, so no sync
        // is held while the writer waits for its threads to end.
        let ends = ends;
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::pin::pin!(insert(&writer, 1));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // The first write's sync began and stalls on one thread...
        assert_eq!(began.recv().unwrap(), 0);
        // ...so the second write's sync, on the other, begins after both
        // commits and covers them both: each is answered while the first
        // sync still runs.
        within(insert(&writer, 2)).await.unwrap();
        within(first).await.unwrap();
        ends[0].send(Ok(())).unwrap();
        assert_eq!(within(count(&writer, None)).await, 2);
    }

    /// A log sync that succeeds at once.
    fn sync_at_once() -> SyncFn {
        Box::new(|| Ok(()))
    }

    /// Holds the writer thread inside a request of its own until the
    /// sender returned is used: requests queued meanwhile share one batch.
    #[allow(clippy::type_complexity)]
    fn hold_writer(
        writer: &Writer,
    ) -> (
        std::pin::Pin<Box<dyn Future<Output = StoreResult<()>> + '_>>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (running, running_rx) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let mut holder = Box::pin(writer.run(move |_| {
            let _ = running.send(());
            let _ = released.recv();
            Ok(())
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(holder.as_mut().poll(&mut cx).is_pending());
        running_rx.recv().unwrap();
        (holder, release)
    }

    #[tokio::test]
    async fn a_request_without_a_savepoint_that_fails_unchanged_leaves_its_batch_to_commit() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_sync(
            &dir,
            sync_at_once(),
            Box::new(|| panic!("no sync fails here")),
        );
        let (holder, release) = hold_writer(&writer);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut refused =
            std::pin::pin!(writer.run_without_savepoint(|_| {
                Err::<(), _>(StoreError::QueueNotFound("q".into()))
            }));
        assert!(refused.as_mut().poll(&mut cx).is_pending());
        let mut fine = std::pin::pin!(insert(&writer, 1));
        assert!(fine.as_mut().poll(&mut cx).is_pending());
        release.send(()).unwrap();
        within(holder).await.unwrap();
        assert_eq!(
            within(refused).await,
            Err(StoreError::QueueNotFound("q".into()))
        );
        within(fine).await.unwrap();
        assert_eq!(within(count(&writer, None)).await, 1);
    }

    #[tokio::test]
    async fn a_request_without_a_savepoint_that_fails_after_a_change_fails_its_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_sync(
            &dir,
            sync_at_once(),
            Box::new(|| panic!("no sync fails here")),
        );
        let (holder, release) = hold_writer(&writer);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut fine = std::pin::pin!(insert(&writer, 1));
        assert!(fine.as_mut().poll(&mut cx).is_pending());
        // It breaks its promise: a change, then a failure.
        let mut broken = std::pin::pin!(writer.run_without_savepoint(|tx| {
            tx.execute("INSERT INTO t (v) VALUES (2)", [])
                .map_err(backend)?;
            Err::<(), _>(StoreError::Backend("failed after its change".into()))
        }));
        assert!(broken.as_mut().poll(&mut cx).is_pending());
        release.send(()).unwrap();
        within(holder).await.unwrap();
        assert!(within(broken).await.is_err());
        // The request before it in the batch is not acknowledged either:
        // its commit could not keep one change and drop the other.
        match within(fine).await {
            Err(StoreError::Backend(message)) => {
                assert!(message.contains("nothing was committed"), "{message}")
            }
            other => panic!("the batch committed: {other:?}"),
        }
        assert_eq!(within(count(&writer, None)).await, 0);
        // The next batch commits as usual.
        within(insert(&writer, 3)).await.unwrap();
        assert_eq!(within(count(&writer, None)).await, 1);
    }

    #[tokio::test]
    async fn a_sync_thread_that_panics_answers_what_waits_with_the_error() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        let (began, began_rx) = std::sync::mpsc::channel::<()>();
        let (end, wait) = std::sync::mpsc::channel::<()>();
        let mut wait = Some(wait);
        // The only sync thread: its first sync panics when told to.
        let sync = Box::new(move || {
            if let Some(wait) = wait.take() {
                let _ = began.send(());
                let _ = wait.recv();
                panic!("a bug in the sync thread (this test's)");
            }
            Ok(())
        }) as SyncFn;
        let writer = writer_with_sync(&dir, sync, Box::new(|| panic!("no sync fails here")));
        let end = end;
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::pin::pin!(insert(&writer, 1));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        began_rx.recv().unwrap();
        end.send(()).unwrap();
        // No sync thread is left to answer it: the panicking one does.
        let failed = StoreError::Backend(SYNC_FAILED.into());
        assert_eq!(within(first).await, Err(failed.clone()));
        assert_eq!(within(insert(&writer, 2)).await, Err(failed));
    }

    #[tokio::test]
    async fn once_a_sync_fails_nothing_is_answered_as_synced_even_by_a_later_sync() {
        use std::future::Future as _;
        use std::task::{Context, Waker};
        let dir = tempfile::tempdir().unwrap();
        let (syncs, began, ends) = held_syncs(2);
        let stopped = Arc::new(AtomicU64::new(0));
        let stops = stopped.clone();
        let writer = writer_with_syncs(
            &dir,
            syncs,
            Box::new(move || {
                stops.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let ends = ends;
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = std::pin::pin!(insert(&writer, 1));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert_eq!(began.recv().unwrap(), 0);
        let mut second = std::pin::pin!(insert(&writer, 2));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(began.recv().unwrap(), 1);
        // The first sync fails; the second, which covers both writes,
        // then succeeds. Neither write is acknowledged.
        ends[0].send(Err(std::io::Error::other("EIO"))).unwrap();
        let failed = StoreError::Backend(SYNC_FAILED.into());
        assert_eq!(within(first).await, Err(failed.clone()));
        ends[1].send(Ok(())).unwrap();
        assert_eq!(within(second).await, Err(failed.clone()));
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
        assert_eq!(within(insert(&writer, 3)).await, Err(failed));
    }
}
