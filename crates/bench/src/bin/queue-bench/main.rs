//! Durable queue throughput, for `bench/queue.sh`: the raw fsync rate of the
//! directory's disk, then clients each doing send + receive + delete of 1 KiB
//! messages against the SQLite store (every answer after its commit is
//! synced) or, given a URL, against the PostgreSQL store, in one run.
//!
//! Against the SQLite store it first measures the disk's group-commit
//! ceiling for the same clients ([`ceiling`]), so the store's figure can be
//! read as a share of what the disk allows.
//!
//! `queue-bench DIR [SECONDS] [CLIENTS] [postgres://...]`; prints
//! `key=value` lines. `QUEUE_BENCH_DURABILITY=relaxed` runs the SQLite store
//! without its sync thread instead: without an fsync per commit the writer
//! thread's own cost per request is what limits it, which is what changes to
//! that thread are measured by when the disk is shared and noisy.

mod ceiling;

use nimbus_store::{QueueConfig, QueueStore, SendMessage, Store, StoreObserver, SystemClock};
use nimbus_store_postgres::{PgOptions, PgStore};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MESSAGE_BYTES: usize = 1024;

/// Reads (commits, requests, log syncs) so far, where the store counts
/// them (the PostgreSQL store counts no syncs: the server makes them).
type CommitStats = Box<dyn Fn() -> (u64, u64, u64)>;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: queue-bench DIR [SECONDS] [CLIENTS] [postgres://...]"),
    );
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let postgres = args.next();
    std::fs::create_dir_all(&dir).unwrap();
    let duration = Duration::from_secs(seconds);

    let fsyncs = fsync_rate(&dir, duration);
    println!("fsync_per_s={fsyncs:.0}");
    let ceiling = postgres
        .is_none()
        .then(|| ceiling::measure(&dir, duration, clients));
    if let Some(ceiling) = &ceiling {
        println!("ceiling_messages_per_s={:.0}", ceiling.messages_per_s);
        println!("ceiling_sync_mean_us={}", ceiling.sync_mean.as_micros());
    }

    // Time spent in syncs of the SQLite store's log (the PostgreSQL server
    // syncs its own, unseen).
    let sync_times = Arc::new(SyncTimes::default());
    let (store, commit_stats): (Arc<dyn QueueStore>, CommitStats) = match postgres {
        Some(url) => {
            let options = PgOptions {
                url,
                relaxed_durability: false,
                // One connection per client, as pgbench has.
                pool_size: clients,
            };
            let store = PgStore::connect(&options, None).await.unwrap();
            let counts = Arc::new(Commits::default());
            store.observe(counts.clone());
            (
                Arc::new(store),
                Box::new(move || {
                    (
                        counts.commits.load(Ordering::Relaxed),
                        counts.requests.load(Ordering::Relaxed),
                        0,
                    )
                }),
            )
        }
        None => {
            let relaxed = std::env::var("QUEUE_BENCH_DURABILITY").as_deref() == Ok("relaxed");
            let options = SqliteOptions {
                path: dir.join("queue-bench.db"),
                durability: if relaxed {
                    Durability::RelaxedMayLoseRecentWrites
                } else {
                    Durability::Fsync
                },
            };
            println!("durability={}", if relaxed { "relaxed" } else { "fsync" });
            let _ = std::fs::remove_file(&options.path);
            let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
            store.observe(sync_times.clone());
            let stats = store.clone();
            (
                store,
                Box::new(move || {
                    let s = stats.commit_stats();
                    (s.commits, s.requests, s.syncs)
                }),
            )
        }
    };
    store
        .declare_queues(&[QueueConfig {
            name: "bench".into(),
            visibility_timeout_ms: 30_000,
            retention_ms: 3_600_000,
            delay_ms: 0,
            max_message_bytes: 256 * 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        }])
        .await
        .unwrap();
    let before = commit_stats();
    let sync_nanos_before = sync_times.nanos.load(Ordering::Relaxed);
    let cpu_before = cpu_ticks();
    let written_before = bytes_written();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let message = SendMessage {
                        body: vec![b'x'; MESSAGE_BYTES],
                        ..SendMessage::default()
                    };
                    store.send("bench", vec![message]).await.unwrap();
                    let got = store.receive("bench", 1, None).await.unwrap();
                    for m in got {
                        store.delete("bench", &m.receipt_handle).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = commit_stats();
    let cpu_ticks_used = cpu_ticks() - cpu_before;
    let written = bytes_written() - written_before;
    let messages = done.load(Ordering::Relaxed) as f64 / elapsed;
    println!("clients={clients}");
    println!("messages_per_s={messages:.0}");
    // CPU time this process spent per message (its threads: clients,
    // runtime, writer, sync, checkpoints; and the kernel's work for them),
    // which a busy machine disturbs far less than the rate.
    let total = done.load(Ordering::Relaxed).max(1) as f64;
    println!(
        "cpu_us_per_message={:.1}",
        cpu_ticks_used as f64 * 1e6 / TICKS_PER_S / total
    );
    // Bytes this process handed to `write` per message: for the SQLite
    // store, the log pages its commits appended (each page a commit
    // changed, whole), and the checkpoints' copies into the database file.
    // A count, so the machine's load does not move it.
    println!("bytes_written_per_message={:.0}", written as f64 / total);
    if after.0 > before.0 {
        let commits = (after.0 - before.0) as f64;
        let requests = (after.1 - before.1) as f64;
        println!("store_requests_per_s={:.0}", requests / elapsed);
        println!("commits_per_s={:.0}", commits / elapsed);
        println!("requests_per_commit={:.1}", requests / commits.max(1.0));
        if after.2 > before.2 {
            let syncs = (after.2 - before.2) as f64;
            println!("syncs_per_s={:.0}", syncs / elapsed);
            println!("requests_per_sync={:.1}", requests / syncs);
            let nanos = sync_times.nanos.load(Ordering::Relaxed) - sync_nanos_before;
            // Syncs overlap (the store has two sync threads), so this is
            // the time each took, not the disk's share of the run.
            println!("sync_mean_us={:.0}", nanos as f64 / 1e3 / syncs);
        }
    }
    println!("messages_per_fsync_ratio={:.2}", messages / fsyncs);
    if let Some(ceiling) = &ceiling {
        println!("share_of_ceiling={:.2}", messages / ceiling.messages_per_s);
    }
}

/// `sysconf(_SC_CLK_TCK)` on Linux: what `/proc` counts CPU time in.
const TICKS_PER_S: f64 = 100.0;

/// User plus system CPU time of this process so far, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from `state`:
    // utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Bytes this process has passed to `write` and its kind so far
/// (`wchar` of `/proc/self/io`).
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|line| line.strip_prefix("wchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Counts the PostgreSQL store's commits and the requests they carried.
#[derive(Default)]
struct Commits {
    commits: AtomicU64,
    requests: AtomicU64,
}

impl StoreObserver for Commits {
    fn committed(&self, requests: usize, _took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
    }

    fn dead_lettered(&self, _queue: &str, _messages: u64) {}
}

/// Adds up how long the SQLite store's log syncs took.
#[derive(Default)]
struct SyncTimes {
    nanos: AtomicU64,
}

impl StoreObserver for SyncTimes {
    fn committed(&self, _requests: usize, _took: Duration) {}

    fn dead_lettered(&self, _queue: &str, _messages: u64) {}

    fn log_synced(&self, took: Duration) {
        self.nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Appends 1 KiB and `fdatasync`s, as fast as the disk allows.
fn fsync_rate(dir: &std::path::Path, duration: Duration) -> f64 {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [0u8; MESSAGE_BYTES];
    let started = Instant::now();
    let mut syncs = 0u64;
    while started.elapsed() < duration {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
        syncs += 1;
    }
    let rate = syncs as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}
