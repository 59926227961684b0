//! The disk's group-commit ceiling for queue-bench's load: the same number
//! of clients, each message three requests in a row, each answered only
//! after a sync that began after it was written, but with no database and
//! clients that cost nothing. What a queue on this disk can reach if its own
//! work took no time at all.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What each request writes: one log page, the least a durable change of a
/// row can cost (the SQLite store writes several per request).
const PAGE: usize = 4096;

/// The log is overwritten in place, wrapping, as SQLite reuses its log after
/// a checkpoint: a sync then flushes data only, with no change to the file's
/// size to journal.
const LOG_BYTES: u64 = 16 << 20;

struct Log {
    /// Requests waiting for the writer: every client starts with one, and
    /// sends its next the moment its last is answered.
    waiting: usize,
    /// Batches written and not yet known durable: (batch, requests in it).
    unsynced: VecDeque<(u64, usize)>,
    /// The last batch written, and the last a sync has begun for.
    written: u64,
    sync_begun: u64,
    answered: u64,
    syncs: u64,
    sync_time: Duration,
    stop: bool,
}

struct Shared {
    log: Mutex<Log>,
    /// Wakes the writer: requests are waiting.
    requests: Condvar,
    /// Wakes the sync thread: a batch was written.
    batches: Condvar,
}

/// What the loop reached.
pub struct Ceiling {
    pub messages_per_s: f64,
    /// The mean time a sync took.
    pub sync_mean: Duration,
}

/// Messages per second that `clients` could reach on `dir`'s disk: one
/// thread takes every waiting request and writes a page for each, and a sync
/// thread syncs whatever was written since its last sync began, as the SQLite
/// store's writer and sync threads do. One sync thread, not the store's two:
/// this disk serves one flush at a time, and in trials a second thread
/// lowered this loop's rate (the store keeps two for its latency).
pub fn measure(dir: &Path, duration: Duration, clients: usize) -> Ceiling {
    let path = dir.join("ceiling-log");
    let file = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.write_all_at(&vec![1u8; LOG_BYTES as usize], 0)
        .unwrap();
    file.sync_all().unwrap();
    let shared = Arc::new(Shared {
        log: Mutex::new(Log {
            waiting: clients,
            unsynced: VecDeque::new(),
            written: 0,
            sync_begun: 0,
            answered: 0,
            syncs: 0,
            sync_time: Duration::ZERO,
            stop: false,
        }),
        requests: Condvar::new(),
        batches: Condvar::new(),
    });
    let writer = {
        let (shared, file) = (shared.clone(), file.try_clone().unwrap());
        std::thread::spawn(move || write_batches(&shared, &file))
    };
    let syncer = {
        let shared = shared.clone();
        std::thread::spawn(move || sync_batches(&shared, &file))
    };
    let started = Instant::now();
    std::thread::sleep(duration);
    let (answered, syncs, sync_time) = {
        let mut log = shared.log.lock().unwrap();
        log.stop = true;
        (log.answered, log.syncs, log.sync_time)
    };
    let elapsed = started.elapsed().as_secs_f64();
    shared.requests.notify_all();
    shared.batches.notify_all();
    writer.join().unwrap();
    syncer.join().unwrap();
    let _ = std::fs::remove_file(&path);
    Ceiling {
        // Send, receive and delete: three requests per message.
        messages_per_s: answered as f64 / 3.0 / elapsed,
        sync_mean: sync_time / syncs.max(1) as u32,
    }
}

fn write_batches(shared: &Shared, file: &std::fs::File) {
    let pages = vec![2u8; 512 * PAGE];
    let mut offset = 0u64;
    loop {
        let requests = {
            let mut log = shared.log.lock().unwrap();
            while log.waiting == 0 && !log.stop {
                log = shared.requests.wait(log).unwrap();
            }
            if log.stop {
                return;
            }
            std::mem::take(&mut log.waiting)
        };
        let bytes = (requests * PAGE).min(pages.len());
        if offset + bytes as u64 > LOG_BYTES {
            offset = 0;
        }
        file.write_all_at(&pages[..bytes], offset).unwrap();
        offset += bytes as u64;
        let mut log = shared.log.lock().unwrap();
        log.written += 1;
        let batch = log.written;
        log.unsynced.push_back((batch, requests));
        shared.batches.notify_one();
    }
}

fn sync_batches(shared: &Shared, file: &std::fs::File) {
    loop {
        let covers = {
            let mut log = shared.log.lock().unwrap();
            while log.written == log.sync_begun && !log.stop {
                log = shared.batches.wait(log).unwrap();
            }
            if log.stop {
                return;
            }
            log.sync_begun = log.written;
            log.written
        };
        let began = Instant::now();
        file.sync_data().unwrap();
        let took = began.elapsed();
        let mut log = shared.log.lock().unwrap();
        log.syncs += 1;
        log.sync_time += took;
        while log
            .unsynced
            .front()
            .is_some_and(|&(batch, _)| batch <= covers)
        {
            let (_, requests) = log.unsynced.pop_front().unwrap();
            log.answered += requests as u64;
            // Each answered client sends its next request at once.
            log.waiting += requests;
        }
        shared.requests.notify_one();
    }
}
