//! Bucket throughput and upload-to-function latency, for `bench/bucket.sh`.
//!
//! `bucket-bench throughput DIR [SECONDS] [CLIENTS]`: in one run, the
//! baseline (4 KiB files written through `object_store`'s local filesystem
//! and fsynced, then read back: the blob I/O alone), then Nimbus's `Buckets`
//! (the same blob write plus the metadata-and-event commit in SQLite with
//! `synchronous=FULL`, then reads through the metadata). Prints `key=value`
//! lines with the ratios.
//!
//! `bucket-bench put ADMIN_URL BUCKET COUNT RATE`: open-loop uploader that
//! puts COUNT objects `lat-N` through the admin API at RATE per second and
//! prints `lat-N ACK_MICROS` for each acknowledged one (admin token in
//! `NIMBUS_ADMIN_TOKEN`).

use bytes::Bytes;
use nimbus_bucket::{Buckets, PutOptions};
use nimbus_store::{QueueConfig, QueueStore, SystemClock};
use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use object_store::ObjectStore as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const OBJECT_BYTES: usize = 4096;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("throughput") => throughput(&args[1..]).await,
        Some("put") => put_latency(&args[1..]).await,
        _ => panic!(
            "usage: bucket-bench throughput DIR [SECONDS] [CLIENTS] | put ADMIN_URL BUCKET COUNT RATE"
        ),
    }
}

/// Runs `op` from `clients` tasks for `duration`, numbering the operations
/// from 0; returns operations per second and how many ran (each to its end).
async fn rate<F, Fut>(clients: usize, duration: Duration, op: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (op, done, stop) = (op.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = done.fetch_add(1, Ordering::Relaxed);
                    op(n).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let ran = done.load(Ordering::Relaxed);
    (ran as f64 / started.elapsed().as_secs_f64(), ran)
}

async fn throughput(args: &[String]) {
    let dir = PathBuf::from(args.first().expect("DIR"));
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let duration = Duration::from_secs(seconds);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let body = Bytes::from(vec![b'x'; OBJECT_BYTES]);

    // Baseline: the blob write and read alone.
    let raw_root = dir.join("raw");
    std::fs::create_dir_all(&raw_root).unwrap();
    let fs = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&raw_root).unwrap());
    let (fs2, body2, root2) = (fs.clone(), body.clone(), raw_root.clone());
    let (raw_put, _) = rate(clients, duration, move |n| {
        let (fs, body, root) = (fs2.clone(), body2.clone(), root2.clone());
        async move {
            let at = object_store::path::Path::from(format!("b/{n}"));
            fs.put(&at, body.into()).await.unwrap();
            tokio::task::spawn_blocking(move || fsync(&root.join(format!("b/{n}"))))
                .await
                .unwrap();
        }
    })
    .await;
    let written = std::fs::read_dir(raw_root.join("b")).unwrap().count() as u64;
    let fs3 = fs.clone();
    let (raw_get, _) = rate(clients, duration, move |n| {
        let fs = fs3.clone();
        async move {
            let at = object_store::path::Path::from(format!("b/{}", n % written));
            fs.get(&at).await.unwrap().bytes().await.unwrap();
        }
    })
    .await;
    println!("baseline_put_per_s={raw_put:.0}");
    println!("baseline_get_per_s={raw_get:.0}");

    // Nimbus: blob write, fsync, then metadata + event in one commit.
    let options = SqliteOptions {
        path: dir.join("bucket-bench.db"),
        durability: Durability::Fsync,
    };
    let store = Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap());
    let app = nimbus_manifest::App::parse(
        Path::new("nimbus.toml"),
        "[app]\nname = \"bench\"\n[function.f]\ncomponent = \"f.wasm\"\n[bucket.b]\n[[trigger.object]]\nbucket = \"b\"\nfunction = \"f\"\n",
    )
    .unwrap();
    store
        .declare_queues(&[QueueConfig {
            name: app.object_triggers[0].queue.clone(),
            visibility_timeout_ms: 30_000,
            retention_ms: 3_600_000,
            delay_ms: 0,
            max_message_bytes: 16 * 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        }])
        .await
        .unwrap();
    let before = store.commit_stats();
    let buckets = Arc::new(Buckets::open(&app, &dir.join("buckets"), store.clone()).unwrap());
    let (b2, body2) = (buckets.clone(), body.clone());
    // Keys `k0` up to the number of puts made, each of them committed.
    let (put, objects) = rate(clients, duration, move |n| {
        let (buckets, body) = (b2.clone(), body2.clone());
        async move {
            buckets
                .put("b", &format!("k{n}"), body, PutOptions::default())
                .await
                .unwrap();
        }
    })
    .await;
    let after = store.commit_stats();
    let b3 = buckets.clone();
    let (get, _) = rate(clients, duration, move |n| {
        let buckets = b3.clone();
        async move {
            buckets
                .get("b", &format!("k{}", n % objects), None)
                .await
                .unwrap();
        }
    })
    .await;
    let per_commit =
        (after.requests - before.requests) as f64 / (after.commits - before.commits).max(1) as f64;
    println!("nimbus_put_per_s={put:.0}");
    println!("nimbus_get_per_s={get:.0}");
    println!("put_ratio={:.2}", put / raw_put);
    println!("get_ratio={:.2}", get / raw_get);
    println!("requests_per_commit={per_commit:.1}");
}

fn fsync(file: &Path) {
    std::fs::File::open(file).unwrap().sync_all().unwrap();
    std::fs::File::open(file.parent().unwrap())
        .unwrap()
        .sync_all()
        .unwrap();
}

async fn put_latency(args: &[String]) {
    let [admin, bucket, count, rate] = args else {
        panic!("usage: bucket-bench put ADMIN_URL BUCKET COUNT RATE");
    };
    let client = nimbus_bench::admin_client();
    let body = Bytes::from(vec![b'x'; OBJECT_BYTES]);
    nimbus_bench::open_loop(count.parse().unwrap(), rate.parse().unwrap(), |n| {
        client
            .put(format!("{admin}/v1/buckets/{bucket}/objects/lat-{n}"))
            .body(body.clone())
    })
    .await;
}
