//! The scale-out store: every store trait on PostgreSQL, through
//! tokio-postgres (pipelined, async) and a deadpool connection pool. Correct
//! for many processes on one database by construction: each request is one
//! READ COMMITTED transaction whose check-then-act steps are row locks
//! (`FOR UPDATE [SKIP LOCKED]`), unique keys (`ON CONFLICT`) or conditional
//! updates, retried whole on serialization failure or deadlock. Time is the
//! database's clock (read once per transaction) unless a test clock is given.

mod batch;
mod bucket;
mod deployment;
mod history;
mod keys;
mod lease;
mod node;
mod password;
mod queue;
mod schedule;
mod schema;
mod secret;
mod table;
mod tls;
mod wake;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use nimbus_store::{Clock, QueueSignals, Store, StoreError, StoreObserver, StoreResult, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

pub use schema::SCHEMA_VERSION;

/// Connections each store keeps at most.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long a request waits for a free connection, or for a new one.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);
/// How long sent data may go unacknowledged by the server before the
/// connection counts as dead (TCP only; a unix socket cannot partition).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of one request whose transaction met a serialization failure
/// or deadlock (each attempt starts afresh).
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?PARAMS]`, or the
    /// key=value form libpq takes; `sslmode` and `sslrootcert` as libpq
    /// reads them (see `tls`).
    pub url: String,
    /// `synchronous_commit = off` on every connection: faster, but the last
    /// commits before a database crash can be lost. Logs a warning.
    pub relaxed_durability: bool,
    pub pool_size: usize,
}

/// The PostgreSQL implementation of the store traits.
pub struct PgStore {
    db: Arc<Db>,
    /// Queue settings recently read, so single-statement operations need no
    /// extra round trip for them.
    queue_configs: queue::ConfigCache,
    /// Group commit for the hot queue operations.
    batcher: batch::Batcher,
    _wake_tasks: wake::Tasks,
}

/// The connections and what each commit reports to: shared by the store's
/// requests and its batch runners (which outlive the request that started
/// them).
pub(crate) struct Db {
    pool: Pool,
    /// A test clock; `None` means the database's clock.
    clock: Option<Arc<dyn Clock>>,
    observer: OnceLock<Arc<dyn StoreObserver>>,
    location: String,
    signals: QueueSignals,
    /// Names changed by commits here, for other processes.
    pending: Arc<wake::Pending>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.db.location)
            .finish()
    }
}

impl PgStore {
    /// Connects, brings the schema up to this binary's version (refusing a
    /// newer one), and returns the store. `clock` overrides the database's
    /// clock (tests only).
    pub async fn connect(options: &PgOptions, clock: Option<Arc<dyn Clock>>) -> StoreResult<Self> {
        let (mut config, tls) = tls::config(&options.url)?;
        password::fill(&mut config);
        let location = location(&config);
        let mut extra = config.get_options().unwrap_or_default().to_owned();
        // Every statement here is a key lookup or a scan in key order. A
        // bitmap scan reads neither in order nor marks dead index entries, so
        // on the messages table (rows deleted as fast as they arrive) a
        // cached plan that picks one makes each receive sort every row
        // deleted since the last vacuum; measured here, it cut queue
        // throughput by up to 3x at random.
        extra.push_str(" -c enable_bitmapscan=off");
        if options.relaxed_durability {
            tracing::warn!(
                store = %location,
                "store durability is relaxed (synchronous_commit = off): acknowledged writes may be lost if the database crashes"
            );
            extra.push_str(" -c synchronous_commit=off");
        }
        config.options(extra.trim());
        if config.get_application_name().is_none() {
            config.application_name("nimbus");
        }
        // A server that stops answering (a frozen host, a partition) must
        // not hold requests for the kernel's default of many minutes: past
        // these, the connection is dead and the request gets `Unavailable`.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_WAIT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECTION_WAIT))
            .create_timeout(Some(CONNECTION_WAIT))
            .build()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut client = pool.get().await.map_err(|e| pool_error(&location, e))?;
        schema::migrate(&mut client).await?;
        drop(client);
        let signals = QueueSignals::default();
        let pending = Arc::new(wake::Pending::default());
        let (wake_tasks, listening) =
            wake::start(pool.clone(), config, tls, pending.clone(), signals.clone());
        // Listening before the first commit, so no other process's change
        // after this point is missed; polling covers a listener that is late.
        if tokio::time::timeout(CONNECTION_WAIT, listening)
            .await
            .is_err()
        {
            tracing::warn!(store = %location, "not yet listening for other processes' changes; relying on polling meanwhile");
        }
        let db = Arc::new(Db {
            pool,
            clock,
            observer: OnceLock::new(),
            location,
            signals,
            pending,
        });
        Ok(PgStore {
            batcher: batch::Batcher::new(db.clone()),
            db,
            queue_configs: queue::ConfigCache::default(),
            _wake_tasks: wake_tasks,
        })
    }
}

impl Db {
    /// Opens a transaction and reads the clock for it.
    async fn begin<'c>(&self, client: &'c mut deadpool_postgres::Client) -> StoreResult<Tx<'c>> {
        let tx = client.transaction().await.map_err(|e| classify(&e, None))?;
        let now = match &self.clock {
            Some(clock) => clock.now_ms() as i64,
            None => {
                let row = tx
                    .query_one(
                        "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8",
                        &[],
                    )
                    .await
                    .map_err(|e| classify(&e, None))?;
                row.get(0)
            }
        };
        Ok(Tx {
            tx,
            now,
            retry: AtomicBool::new(false),
            dead_lettered: Mutex::new(Vec::new()),
            signalled: Mutex::new(Vec::new()),
        })
    }

    /// After a commit of `requests` requests: metrics, then wake-ups here
    /// and elsewhere.
    fn committed(
        &self,
        requests: usize,
        took: Duration,
        dead_lettered: Vec<String>,
        mut signalled: Vec<String>,
    ) {
        if let Some(observer) = self.observer.get() {
            observer.committed(requests, took);
            for queue in dead_lettered {
                observer.dead_lettered(&queue, 1);
            }
        }
        if signalled.is_empty() {
            return;
        }
        signalled.sort_unstable();
        signalled.dedup();
        for name in &signalled {
            self.signals.notify(name);
        }
        self.pending.add(signalled);
    }
}

/// Runs `$body` (an expression using `$tx: &Tx`) in a transaction and
/// commits it, starting over on a serialization failure or deadlock. The
/// answer is given only after the commit.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::PgStore = $store;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let mut client = store.db.client().await?;
            let $tx = store.db.begin(&mut client).await?;
            // An async block, so `?` and `return` in the body end the
            // attempt, not the caller.
            let result = async {
                let $tx = &$tx;
                $body
            }
            .await;
            match result {
                Ok(value) => {
                    let dead = $tx.take_dead_lettered();
                    let signalled = $tx.take_signalled();
                    match $tx.tx.commit().await {
                        Ok(()) => {
                            store.db.committed(1, started.elapsed(), dead, signalled);
                            break Ok(value);
                        }
                        Err(e) if $crate::retryable(&e) && attempt < $crate::MAX_ATTEMPTS => {
                            continue;
                        }
                        Err(e) => break Err($crate::commit_error(&e)),
                    }
                }
                Err(e) => {
                    let retry = $tx.wants_retry();
                    drop($tx);
                    if retry && attempt < $crate::MAX_ATTEMPTS {
                        continue;
                    }
                    break Err(e);
                }
            }
        }
    }};
}
pub(crate) use in_tx;

impl Db {
    /// The test clock's reading, or `None` for the database's clock: the
    /// argument of `nimbus_now_ms` in single statements.
    pub(crate) fn test_now(&self) -> Option<i64> {
        self.clock.as_ref().map(|clock| clock.now_ms() as i64)
    }

    /// Runs one statement on its own: its own transaction, one round trip,
    /// durable when it returns. For operations that are one statement, where
    /// `BEGIN`, a clock reading and `COMMIT` would triple the round trips.
    /// `signal` names what waiters to wake if it changed rows.
    pub(crate) async fn statement(
        &self,
        sql: &str,
        params: &Params<'_>,
        signal: Option<&str>,
    ) -> StoreResult<Vec<Row>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let client = self.client().await?;
            let result = async {
                let statement = client.prepare_cached(sql).await?;
                client.query(&statement, params).await
            }
            .await;
            match result {
                Ok(rows) => {
                    let signalled = match signal {
                        Some(name) if !rows.is_empty() => vec![name.to_owned()],
                        _ => Vec::new(),
                    };
                    self.committed(1, started.elapsed(), Vec::new(), signalled);
                    return Ok(rows);
                }
                Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => continue,
                Err(e) => return Err(classify(&e, None)),
            }
        }
    }

    pub(crate) async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.location, e))
    }
}

/// What a request's statements run in: the open transaction and the
/// clock reading for all of it.
pub(crate) struct Tx<'c> {
    pub tx: deadpool_postgres::Transaction<'c>,
    /// Milliseconds since the epoch, by the database (or test) clock.
    pub now: i64,
    /// Set when a statement failed in a way that retrying the whole
    /// transaction can fix.
    retry: AtomicBool,
    /// Queues dead-letter moves were made from, reported after the commit.
    dead_lettered: Mutex<Vec<String>>,
    /// Signal names (queues sent to, streams written) to wake after the
    /// commit.
    signalled: Mutex<Vec<String>>,
}

pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

impl Tx<'_> {
    fn fail(&self, e: &tokio_postgres::Error) -> StoreError {
        classify(e, Some(&self.retry))
    }

    pub(crate) fn wants_retry(&self) -> bool {
        self.retry.load(Ordering::Relaxed)
    }

    pub(crate) fn take_dead_lettered(&self) -> Vec<String> {
        std::mem::take(&mut self.dead_lettered.lock().unwrap())
    }

    /// Wakes waiters on `name` (here and in other processes) once this
    /// transaction commits.
    pub(crate) fn signal(&self, name: &str) {
        self.signalled.lock().unwrap().push(name.to_owned());
    }

    pub(crate) fn take_signalled(&self) -> Vec<String> {
        std::mem::take(&mut self.signalled.lock().unwrap())
    }

    pub(crate) fn dead_lettered(&self, queue: &str, messages: usize) {
        let mut moves = self.dead_lettered.lock().unwrap();
        moves.extend(std::iter::repeat_n(queue.to_owned(), messages));
    }

    /// The statement, prepared once per connection.
    async fn prepared(&self, sql: &str) -> StoreResult<tokio_postgres::Statement> {
        self.tx.prepare_cached(sql).await.map_err(|e| self.fail(&e))
    }

    /// Runs a statement (prepared once per connection) and returns its rows.
    pub(crate) async fn query(&self, sql: &str, params: &Params<'_>) -> StoreResult<Vec<Row>> {
        let statement = self.prepared(sql).await?;
        self.tx
            .query(&statement, params)
            .await
            .map_err(|e| self.fail(&e))
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &Params<'_>,
    ) -> StoreResult<Option<Row>> {
        let statement = self.prepared(sql).await?;
        self.tx
            .query_opt(&statement, params)
            .await
            .map_err(|e| self.fail(&e))
    }

    pub(crate) async fn query_one(&self, sql: &str, params: &Params<'_>) -> StoreResult<Row> {
        let statement = self.prepared(sql).await?;
        self.tx
            .query_one(&statement, params)
            .await
            .map_err(|e| self.fail(&e))
    }

    pub(crate) async fn execute(&self, sql: &str, params: &Params<'_>) -> StoreResult<u64> {
        let statement = self.prepared(sql).await?;
        self.tx
            .execute(&statement, params)
            .await
            .map_err(|e| self.fail(&e))
    }
}

/// `after_ms` past `now`, clamped to the end of time (durations come from
/// callers; an overflow must not fail the request).
pub(crate) fn later(now: i64, after_ms: u64) -> i64 {
    now.saturating_add(i64::try_from(after_ms).unwrap_or(i64::MAX))
}

/// A caller's `u64` as a stored `int8`, clamped.
pub(crate) fn int8(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Serialization failures and deadlocks: the transaction was rolled back and
/// running it again is the fix.
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// A failed COMMIT: on a lost connection the outcome is unknown.
pub(crate) fn commit_error(e: &tokio_postgres::Error) -> StoreError {
    classify(e, None)
}

/// A driver error as a store error: the server's own errors keep their
/// message; a lost or refused connection is `Unavailable`.
fn classify(e: &tokio_postgres::Error, retry: Option<&AtomicBool>) -> StoreError {
    if retryable(e)
        && let Some(flag) = retry
    {
        flag.store(true, Ordering::Relaxed);
    }
    match e.as_db_error() {
        // Class 57P (the server is shutting down, or ended this session)
        // and class 08 (connection exceptions) are outages, not failures of
        // the request.
        Some(db) if db.code().code().starts_with("57P") || db.code().code().starts_with("08") => {
            StoreError::Unavailable(format!("PostgreSQL ended the connection: {}", db.message()))
        }
        Some(db) => StoreError::Backend(format!("{}: {}", db.severity(), db.message())),
        None if e.is_closed() || is_io(e) => StoreError::Unavailable(format!(
            "lost the connection to PostgreSQL ({})",
            with_causes(e)
        )),
        None => StoreError::Backend(e.to_string()),
    }
}

/// The error and what caused it, as one line.
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

fn pool_error(location: &str, e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => match e.as_db_error() {
            // Refused by the server (authentication, no such database): the
            // server's own words.
            Some(db) => StoreError::Unavailable(format!(
                "PostgreSQL at {location} refused the connection: {}",
                db.message()
            )),
            None => StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {location}: {}",
                with_causes(&e)
            )),
        },
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no connection to PostgreSQL at {location} within {} s",
            CONNECTION_WAIT.as_secs()
        )),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(format!("PostgreSQL at {location}: {other}")),
    }
}

/// `user@host:port/database` from a parsed URL: never the password.
fn location(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn observe(&self, observer: Arc<dyn StoreObserver>) {
        let _ = self.db.observer.set(observer);
    }

    fn location(&self) -> String {
        self.db.location.clone()
    }

    fn signals(&self) -> &QueueSignals {
        &self.db.signals
    }

    /// `SELECT 1` on a pooled connection: a dead one is replaced, and a
    /// server that is down or refusing connections is `Unavailable`.
    async fn ping(&self) -> StoreResult<()> {
        let client = self.db.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(())
    }

    async fn now_ms(&self) -> StoreResult<Timestamp> {
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT nimbus_now_ms($1)", &[&self.db.test_now()])
            .await
            .map_err(|e| classify(&e, None))?;
        Ok(row.get::<_, i64>(0).max(0) as Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setting of a store's connection, with `relaxed_durability` as
    /// given.
    async fn setting(relaxed_durability: bool, name: &str) -> String {
        let options = PgOptions {
            url: nimbus_test_postgres::server().fresh_url(),
            relaxed_durability,
            pool_size: 1,
        };
        let store = PgStore::connect(&options, None).await.unwrap();
        let client = store.db.client().await.unwrap();
        client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test]
    async fn relaxed_durability_turns_synchronous_commit_off_and_the_default_leaves_it_on() {
        assert_eq!(setting(false, "synchronous_commit").await, "on");
        assert_eq!(setting(true, "synchronous_commit").await, "off");
    }

    #[tokio::test]
    async fn connections_never_plan_bitmap_scans() {
        assert_eq!(setting(false, "enable_bitmapscan").await, "off");
        assert_eq!(setting(true, "enable_bitmapscan").await, "off");
    }
}
