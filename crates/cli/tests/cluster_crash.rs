//! The cluster crash test: three nodes share one PostgreSQL store and one
//! S3 prefix and take traffic on all of them at once (queue sends for a
//! queue trigger, table writes for a stream trigger with several lanes,
//! uploads for an object trigger, asynchronous invocations, and a schedule
//! ticking every second), while every few seconds a random node is killed
//! with SIGKILL and restarted with the same node id and data directory,
//! after a pause that is sometimes shorter than the lease period (it takes
//! its own work back) and sometimes longer (the others take it over, then
//! hand a share back when it returns). Then traffic stops, the cluster
//! drains, and the test counts, over the output of every process:
//!
//! - acknowledged (a 2xx reached the client) but never handled: 0, for
//!   queue sends, uploads, async invocations and table writes; handled but
//!   never sent: 0. A request cut off by a kill may still have been stored,
//!   so handled-but-unacknowledged is allowed. Repeated deliveries are
//!   reported, not failed: delivery is at least once.
//! - every acknowledged table write has exactly one change record, and
//!   every change record was handled.
//! - no two nodes ran one stream lane at the same time. The function
//!   (`ledger`) prints when each invocation began and ended (the host's wall
//!   clock, which every process here shares); the node is the process whose
//!   output carries the lines; the lane follows from the records' partition
//!   keys (`key_lane`, the hash lanes are cut by); each node's output says
//!   when it took a lane's lease and at which fence. An invocation cut off
//!   by SIGKILL ended at the latest when its process was killed. Checked:
//!   every lane's invocations, over all nodes and restarts, never overlap in
//!   time; each ran on a node that had taken that lane's lease (the last
//!   such line before it gives its fence); each fence of a lease (lanes,
//!   schedule, sweepers) was taken by one node only; and within one hold of
//!   a lane, one key's records were handled in sequence order (a new hold
//!   may repeat records after the stored checkpoint). Invocation records
//!   (`/v1/invocations`) would not do: a killed process never writes the
//!   records of what it was running.
//! - each schedule tick fired once (one event per scheduled time), every
//!   second from the first tick until traffic stopped has a handled tick
//!   (`catch_up = "all"` fires the ticks of a gap between holders), and a
//!   tick was handled again only when a process that had it was killed
//!   before the tick's message lease ran out.
//! - every acknowledged object reads back with its bytes, from any node.
//! - no orphaned blob: every blob under the S3 prefix is referenced by an
//!   object, and no upload registration is left. An upload cut off by
//!   SIGKILL leaves its registration (which keeps the blob from every other
//!   node's sweep for `UPLOAD_BOUND`, as that node may still be uploading),
//!   but registrations carry their node, and the killed node, coming back
//!   under the same `--node-id`, ends its predecessor's and sweeps their
//!   blobs as it starts.
//!
//! `NIMBUS_CRASH_ROUNDS` sets the number of kills (10; each round takes
//! about 7 s) and `NIMBUS_CRASH_SEED` replays the choices of an earlier run
//! (which node, when, and for how long; each run prints its seed), though
//! not its timing.

mod support;

use nimbus_store::table::key_lane;
use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::crash::setting;
use support::{Lines, Nimbus, TestApp, client, get_json};

const NODES: usize = 3;
/// Lanes of the stream trigger (its `max_concurrency`): two per node, so
/// every kill moves lanes and every return takes a share back from the
/// others (a handover while they run).
const LANES: u32 = 6;
/// Short, so a killed node's work moves within seconds.
const LEASE_MS: u64 = 2_000;
/// Partition keys the table writes spread over.
const KEYS: usize = 16;
/// Pause between one client's requests.
const PACE: Duration = Duration::from_millis(50);
/// How long the drain may take: a delivery cut off by a kill comes back
/// once its message's lease runs out (the function's `timeout_ms` plus 30 s
/// on the internal queues of uploads, async invocations and ticks).
const DRAIN: Duration = Duration::from_secs(120);

fn app() -> TestApp {
    let ledger = |extra: &str| format!("timeout_ms = 1000\n{extra}");
    TestApp::new("cluster-crash")
        .function(
            "queued",
            programs::LEDGER,
            &ledger("\n[queue.jobs]\nvisibility_timeout_ms = 2000"),
        )
        .function(
            "streamed",
            programs::LEDGER,
            &ledger("\n[table.orders]\npartition_key = \"customer\"\nstream = \"new_image\""),
        )
        .function("uploaded", programs::LEDGER, &ledger("\n[bucket.photos]"))
        .function("ticked", programs::LEDGER, &ledger(""))
        .function("invoked", programs::LEDGER, &ledger(""))
        .route_kind(
            "queue",
            "queue = \"jobs\"\nfunction = \"queued\"\nbatch_size = 10\nretry_backoff = { initial_ms = 0, max_ms = 0 }",
        )
        .route_kind(
            "stream",
            &format!("table = \"orders\"\nfunction = \"streamed\"\nbatch_size = 10\nmax_concurrency = {LANES}\nstarting_position = \"oldest\""),
        )
        .route_kind("object", "bucket = \"photos\"\nfunction = \"uploaded\"\nbatch_size = 10")
        .route_kind(
            "schedule",
            "name = \"beat\"\ncron = \"* * * * * *\"\ncatch_up = \"all\"\nfunction = \"ticked\"",
        )
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// A small deterministic generator, so a run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the clients tried and what was acknowledged.
#[derive(Default)]
struct Sent {
    queue_tried: HashSet<String>,
    queue_acked: HashSet<String>,
    async_tried: HashSet<String>,
    async_acked: HashSet<String>,
    /// Write id -> partition key.
    writes_tried: HashMap<String, String>,
    /// Write id -> (partition key, version).
    writes_acked: HashMap<String, (String, u64)>,
    uploads_tried: HashSet<String>,
    /// Key -> bytes.
    uploads_acked: HashMap<String, Vec<u8>>,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Queue,
    Table,
    Upload,
    Async,
}

const KINDS: [Kind; 4] = [Kind::Queue, Kind::Table, Kind::Upload, Kind::Async];

/// The bytes of upload `key`: its own, of a size that varies.
fn upload_bytes(key: &str, n: usize) -> Vec<u8> {
    key.repeat(1 + n % 300).into_bytes()
}

/// Sends request `n` of `kind` to the node at `admin`, noting it as tried
/// before it goes and as acknowledged if a 2xx comes back.
async fn send(http: &reqwest::Client, sent: &Mutex<Sent>, admin: &str, kind: Kind, n: usize) {
    match kind {
        Kind::Queue => {
            let body = format!("q-{n}");
            sent.lock().unwrap().queue_tried.insert(body.clone());
            let response = http
                .post(format!("{admin}/v1/queues/jobs/messages"))
                .json(&json!({ "body": body }))
                .send()
                .await;
            if response.is_ok_and(|r| r.status() == 200) {
                sent.lock().unwrap().queue_acked.insert(body);
            }
        }
        Kind::Table => {
            let (write, key) = (format!("t-{n}"), format!("k{:02}", n % KEYS));
            sent.lock()
                .unwrap()
                .writes_tried
                .insert(write.clone(), key.clone());
            let response = http
                .post(format!("{admin}/v1/tables/orders/items"))
                .json(&json!({ "item": { "customer": key, "write": write } }))
                .send()
                .await;
            let Ok(response) = response else { return };
            if response.status() != 200 {
                return;
            }
            if let Ok(body) = response.json::<Value>().await {
                let version = body["version"].as_u64().expect("a version");
                sent.lock()
                    .unwrap()
                    .writes_acked
                    .insert(write, (key, version));
            }
        }
        Kind::Upload => {
            let key = format!("o-{n}");
            let bytes = upload_bytes(&key, n);
            sent.lock().unwrap().uploads_tried.insert(key.clone());
            let response = http
                .put(format!("{admin}/v1/buckets/photos/objects/{key}"))
                .body(bytes.clone())
                .send()
                .await;
            if response.is_ok_and(|r| r.status() == 200) {
                sent.lock().unwrap().uploads_acked.insert(key, bytes);
            }
        }
        Kind::Async => {
            let data = format!("a-{n}");
            sent.lock().unwrap().async_tried.insert(data.clone());
            let response = http
                .post(format!("{admin}/v1/functions/invoked/invoke-async"))
                .header("content-type", "text/plain")
                .body(data.clone())
                .send()
                .await;
            if response.is_ok_and(|r| r.status() == 202) {
                sent.lock().unwrap().async_acked.insert(data);
            }
        }
    }
}

/// One process of one node: its output, and when it was killed.
struct Incarnation {
    node: String,
    stderr: Arc<Lines>,
    killed_us: Option<u128>,
}

/// One node: its id and data directory outlive its processes.
struct Node {
    id: String,
    dir: tempfile::TempDir,
    nimbus: Option<Nimbus>,
}

/// The three nodes, the processes they have had, and where clients reach
/// them now.
struct Cluster {
    app: TestApp,
    store: String,
    objects: String,
    nodes: Vec<Node>,
    incarnations: Vec<Incarnation>,
    /// Each node's admin URL while it runs, for the clients.
    admins: Arc<Vec<Mutex<Option<String>>>>,
}

impl Cluster {
    async fn start(app: TestApp, store: String, objects: String) -> Cluster {
        app.write();
        let mut cluster = Cluster {
            app,
            store,
            objects,
            nodes: (0..NODES)
                .map(|i| Node {
                    id: format!("node-{i}"),
                    dir: tempfile::tempdir().unwrap(),
                    nimbus: None,
                })
                .collect(),
            incarnations: Vec::new(),
            admins: Arc::new((0..NODES).map(|_| Mutex::new(None)).collect()),
        };
        for node in 0..NODES {
            cluster.restart(node).await;
        }
        cluster
    }

    /// Starts a process for `node` (its same id and data directory).
    async fn restart(&mut self, node: usize) {
        let lease = LEASE_MS.to_string();
        let Node { id, dir, nimbus } = &mut self.nodes[node];
        let mut command = tokio::process::Command::new(support::nimbus_bin());
        command
            .arg("up")
            .arg(self.app.manifest_path())
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--admin-token", support::ADMIN_TOKEN])
            .args(["--store", &self.store, "--objects", &self.objects])
            .args(["--node-id", id, "--lease-ms", &lease]);
        for (key, value) in nimbus_test_s3::server().env() {
            command.env(key, value);
        }
        let started = Nimbus::spawn(command).await;
        self.incarnations.push(Incarnation {
            node: id.clone(),
            stderr: started.stderr.clone(),
            killed_us: None,
        });
        *self.admins[node].lock().unwrap() = Some(started.admin.clone());
        *nimbus = Some(started);
    }

    /// Kills `node`'s process with SIGKILL and waits until it is gone.
    /// Its clients keep sending until it is gone, so requests are in
    /// flight when it dies.
    async fn kill(&mut self, node: usize) {
        let mut nimbus = self.nodes[node].nimbus.take().expect("the node runs");
        nimbus.child.start_kill().unwrap();
        nimbus.child.wait().await.unwrap();
        let killed = now_us();
        *self.admins[node].lock().unwrap() = None;
        let stderr = &nimbus.stderr;
        let incarnation = self
            .incarnations
            .iter_mut()
            .rfind(|i| Arc::ptr_eq(&i.stderr, stderr))
            .unwrap();
        incarnation.killed_us = Some(killed);
    }

    fn admin(&self, node: usize) -> String {
        self.nodes[node].nimbus.as_ref().unwrap().admin.clone()
    }
}

/// An event the function printed.
#[derive(Debug, Clone)]
enum Handled {
    Record {
        seq: u64,
        key: String,
        write: String,
    },
    Tick {
        time: String,
        id: String,
    },
    Object {
        key: String,
    },
    Event {
        data: String,
    },
}

/// One invocation of a function, from its output.
#[derive(Debug)]
struct Invocation {
    incarnation: usize,
    function: String,
    begin_us: u128,
    /// When its `batch end` line was printed; none if its process died first.
    end_us: Option<u128>,
    events: Vec<Handled>,
    /// Each stream lane's last hold taken by this process before the
    /// invocation began.
    lanes_taken: HashMap<u32, Hold>,
}

/// A hold on a lane, from the line saying its lease was taken.
#[derive(Debug, Clone, Copy)]
struct Hold {
    fence: u64,
    /// Which of its process's takes (of any unit) it was.
    take: usize,
}

/// A unit's lease taken by a node, from the node's output.
struct Taken {
    node: String,
    lease: String,
    fence: u64,
}

/// One invocation of a stream lane, for the lane checks.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    begin: u128,
    end: u128,
    node: &'a str,
    fence: u64,
    /// The hold it ran under: (incarnation, take).
    hold: (usize, usize),
    /// Its index in [`Observed::invocations`].
    invocation: usize,
}

/// The lease of each stream lane is this and its index.
const LANE_PREFIX: &str = "stream:orders:streamed:";

/// The value of ` name=` in `line`, up to the next space.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split(' ').next()
}

/// The invocations and leases taken in the output of incarnation `index`.
fn parse(index: usize, lines: &[String]) -> (Vec<Invocation>, Vec<Taken>) {
    let mut invocations: Vec<Invocation> = Vec::new();
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut lanes_taken: HashMap<u32, Hold> = HashMap::new();
    let mut taken = Vec::new();
    for line in lines {
        if line.contains("took the unit's lease")
            && let Some(lease) = field(line, "lease")
        {
            let fence: u64 = field(line, "fence").unwrap().parse().unwrap();
            if let Some(lane) = lease.strip_prefix(LANE_PREFIX) {
                let lane: u32 = lane.split('/').next().unwrap().parse().unwrap();
                let take = taken.len();
                lanes_taken.insert(lane, Hold { fence, take });
            }
            taken.push(Taken {
                node: field(line, "node").unwrap().to_owned(),
                lease: lease.to_owned(),
                fence,
            });
            continue;
        }
        let Some(text) = line.split("nimbus::function: ").nth(1) else {
            continue;
        };
        let (Some(function), Some(id)) = (field(line, "function"), field(line, "invocation_id"))
        else {
            continue;
        };
        let at = || -> u128 { field(text, "at").unwrap().parse().unwrap() };
        if text.starts_with("batch begin ") {
            open.insert(id.to_owned(), invocations.len());
            invocations.push(Invocation {
                incarnation: index,
                function: function.to_owned(),
                begin_us: at(),
                end_us: None,
                events: Vec::new(),
                lanes_taken: lanes_taken.clone(),
            });
            continue;
        }
        let Some(&i) = open.get(id) else { continue };
        let invocation = &mut invocations[i];
        let text = format!(" {text}");
        let value = |name: &str| field(&text, name).unwrap_or_default().to_owned();
        if text.starts_with(" batch end ") {
            invocation.end_us = Some(at());
        } else if text.starts_with(" record ") {
            invocation.events.push(Handled::Record {
                seq: value("seq").parse().unwrap(),
                key: value("key"),
                write: value("write"),
            });
        } else if text.starts_with(" tick ") {
            invocation.events.push(Handled::Tick {
                time: value("time"),
                id: value("id"),
            });
        } else if text.starts_with(" object ") {
            invocation
                .events
                .push(Handled::Object { key: value("key") });
        } else if text.starts_with(" event ") {
            invocation.events.push(Handled::Event {
                data: value("data"),
            });
        }
    }
    (invocations, taken)
}

/// Everything every process printed so far.
fn observe(cluster: &Cluster) -> (Vec<Invocation>, Vec<Taken>) {
    let mut invocations = Vec::new();
    let mut taken = Vec::new();
    for (i, incarnation) in cluster.incarnations.iter().enumerate() {
        let (mut inv, mut tk) = parse(i, &incarnation.stderr.snapshot());
        invocations.append(&mut inv);
        taken.append(&mut tk);
    }
    (invocations, taken)
}

/// How many times each item was handled, per function.
#[derive(Default)]
struct Counts {
    queue: HashMap<String, usize>,
    asyncs: HashMap<String, usize>,
    objects: HashMap<String, usize>,
    /// Seq -> (key, write, times handled).
    records: BTreeMap<u64, (String, String, usize)>,
    /// Scheduled time -> event ids (one per handling).
    ticks: BTreeMap<String, Vec<String>>,
}

fn count(invocations: &[Invocation]) -> Counts {
    let mut counts = Counts::default();
    for invocation in invocations {
        for event in &invocation.events {
            match (invocation.function.as_str(), event) {
                ("queued", Handled::Event { data }) => {
                    *counts.queue.entry(data.clone()).or_default() += 1
                }
                ("invoked", Handled::Event { data }) => {
                    *counts.asyncs.entry(data.clone()).or_default() += 1
                }
                ("uploaded", Handled::Object { key }) => {
                    *counts.objects.entry(key.clone()).or_default() += 1
                }
                ("streamed", Handled::Record { seq, key, write }) => {
                    counts
                        .records
                        .entry(*seq)
                        .or_insert_with(|| (key.clone(), write.clone(), 0))
                        .2 += 1
                }
                ("ticked", Handled::Tick { time, id }) => counts
                    .ticks
                    .entry(time.clone())
                    .or_default()
                    .push(id.clone()),
                (function, event) => panic!("{function} printed {event:?}"),
            }
        }
    }
    counts
}

fn rfc3339_ms(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .unwrap_or_else(|e| panic!("{time}: {e}"))
        .timestamp_millis()
}

async fn queue_drained(admin: &str, queue: &str) -> bool {
    let stats = get_json(format!("{admin}/v1/queues/{queue}")).await;
    stats["visible"] == 0 && stats["in_flight"] == 0 && stats["delayed"] == 0
}

/// The highest change record number of `orders`.
async fn latest_seq(admin: &str) -> u64 {
    let page = get_json(format!(
        "{admin}/v1/tables/orders/stream?after={}&limit=1",
        i64::MAX
    ))
    .await;
    page["latest"].as_u64().unwrap()
}

/// The whole change stream: seq -> (key, version, write id).
async fn stream(admin: &str) -> BTreeMap<u64, (String, u64, String)> {
    let mut records = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = get_json(format!(
            "{admin}/v1/tables/orders/stream?after={after}&limit=1000"
        ))
        .await;
        let batch = page["records"].as_array().unwrap();
        if batch.is_empty() {
            return records;
        }
        for r in batch {
            let seq = r["sequence"].as_u64().unwrap();
            records.insert(
                seq,
                (
                    r["key"]["partition"].as_str().unwrap().to_owned(),
                    r["version"].as_u64().unwrap(),
                    r["new_image"]["write"].as_str().unwrap_or("-").to_owned(),
                ),
            );
            after = seq;
        }
    }
}

/// What the drain still waits for; empty once every acknowledged item was
/// handled, the queues are empty, and every tick due by `stopped_ms` was
/// handled.
async fn outstanding(cluster: &Cluster, sent: &Sent, stopped_ms: i64) -> Vec<String> {
    let (invocations, _) = observe(cluster);
    let counts = count(&invocations);
    let mut waiting = Vec::new();
    let missing = |acked: &mut dyn Iterator<Item = &String>, seen: &HashMap<String, usize>| {
        acked.filter(|k| !seen.contains_key(*k)).count()
    };
    let queue = missing(&mut sent.queue_acked.iter(), &counts.queue);
    let asyncs = missing(&mut sent.async_acked.iter(), &counts.asyncs);
    let objects = missing(&mut sent.uploads_acked.keys(), &counts.objects);
    for (what, n) in [
        ("queue sends", queue),
        ("async invocations", asyncs),
        ("uploads", objects),
    ] {
        if n > 0 {
            waiting.push(format!("{n} acknowledged {what} not handled yet"));
        }
    }
    let admin = cluster.admin(0);
    let latest = latest_seq(&admin).await;
    let unhandled = (1..=latest)
        .filter(|s| !counts.records.contains_key(s))
        .count();
    if unhandled > 0 {
        waiting.push(format!(
            "{unhandled} of {latest} change records not handled yet"
        ));
    }
    let handled_ticks: BTreeSet<i64> = counts.ticks.keys().map(|t| rfc3339_ms(t)).collect();
    if let Some(&first) = handled_ticks.first() {
        let gaps = (first..=stopped_ms)
            .step_by(1000)
            .filter(|t| !handled_ticks.contains(t))
            .count();
        if gaps > 0 {
            waiting.push(format!("{gaps} ticks due before the stop not handled yet"));
        }
    } else {
        waiting.push("no tick handled yet".to_owned());
    }
    for queue in ["jobs", "_async.invoked", "_object.uploaded.photos"] {
        if !queue_drained(&admin, queue).await {
            waiting.push(format!("queue {queue} not empty"));
        }
    }
    waiting
}

/// How long after a delivery began a kill of its process may explain
/// the delivery coming again: the lease on a message of an internal queue
/// (the function's `timeout_ms` plus 30 s). A process that lived longer
/// had time to settle it.
const REDELIVERY_WINDOW_US: u128 = 31_000_000;

/// Repeated deliveries (handlings of an item after its first), and how
/// many of them followed a delivery to a process killed before it could
/// settle it (within [`REDELIVERY_WINDOW_US`]): at-least-once delivery.
fn repeats<K: Eq + std::hash::Hash>(
    cluster: &Cluster,
    invocations: &[Invocation],
    key: impl Fn(&Invocation, &Handled) -> Option<K>,
) -> (usize, usize) {
    let mut seen: HashMap<K, Vec<&Invocation>> = HashMap::new();
    for invocation in invocations {
        for event in &invocation.events {
            if let Some(k) = key(invocation, event) {
                seen.entry(k).or_default().push(invocation);
            }
        }
    }
    let (mut total, mut after_kill) = (0, 0);
    for handlings in seen.values_mut() {
        handlings.sort_by_key(|i| i.begin_us);
        for (i, later) in handlings.iter().enumerate().skip(1) {
            total += 1;
            let explained = handlings[..i].iter().any(|earlier| {
                cluster.incarnations[earlier.incarnation]
                    .killed_us
                    .is_some_and(|killed| {
                        killed < later.begin_us
                            && killed.saturating_sub(earlier.begin_us) <= REDELIVERY_WINDOW_US
                    })
            });
            if explained {
                after_kill += 1;
            }
        }
    }
    (total, after_kill)
}

/// The clients: one per node and kind of request, each sending one
/// request at a time to its node while it runs.
struct Traffic {
    sent: Arc<Mutex<Sent>>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    fn start(admins: &Arc<Vec<Mutex<Option<String>>>>) -> Traffic {
        let sent = Arc::new(Mutex::new(Sent::default()));
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for node in 0..NODES {
            for kind in KINDS {
                let (sent, next, stop, admins) =
                    (sent.clone(), next.clone(), stop.clone(), admins.clone());
                clients.push(tokio::spawn(async move {
                    let http = client();
                    while !stop.load(Ordering::SeqCst) {
                        let admin = admins[node].lock().unwrap().clone();
                        if let Some(admin) = admin {
                            let n = next.fetch_add(1, Ordering::SeqCst);
                            send(&http, &sent, &admin, kind, n).await;
                        }
                        tokio::time::sleep(PACE).await;
                    }
                }));
            }
        }
        Traffic {
            sent,
            stop,
            clients,
        }
    }

    /// Stops the clients once their requests in flight have ended.
    async fn stop(self) -> Sent {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::try_unwrap(self.sent)
            .ok()
            .expect("every client stopped")
            .into_inner()
            .unwrap()
    }
}

/// Waits until [`outstanding`] finds nothing, within [`DRAIN`].
async fn drain(cluster: &Cluster, sent: &Sent, stopped_ms: i64) {
    let deadline = tokio::time::Instant::now() + DRAIN;
    loop {
        let waiting = outstanding(cluster, sent, stopped_ms).await;
        if waiting.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cluster did not drain within {DRAIN:?}: {waiting:?}"
        );
        // Each look parses every process's output: a few looks a second.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Problems found, each kind with a count and the first few cases.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
}

impl Report {
    fn check<T: std::fmt::Debug>(&mut self, what: &str, cases: &[T]) {
        if !cases.is_empty() {
            let first: Vec<String> = cases.iter().take(5).map(|c| format!("{c:?}")).collect();
            self.failures.push(format!(
                "{what}: {}, such as {}",
                cases.len(),
                first.join("; ")
            ));
        }
    }

    /// Queue sends, async invocations and uploads: none acknowledged and
    /// lost, none handled that was never sent; repeats reported.
    fn deliveries(&mut self, cluster: &Cluster, sent: &Sent, observed: &Observed) {
        let counts = &observed.counts;
        let kinds = [
            (
                "queue sends",
                "queued",
                &sent.queue_tried,
                sent.queue_acked.iter().collect::<Vec<_>>(),
                &counts.queue,
            ),
            (
                "async invocations",
                "invoked",
                &sent.async_tried,
                sent.async_acked.iter().collect(),
                &counts.asyncs,
            ),
            (
                "uploads",
                "uploaded",
                &sent.uploads_tried,
                sent.uploads_acked.keys().collect(),
                &counts.objects,
            ),
        ];
        for (what, function, tried, acked, handled) in kinds {
            let lost: Vec<_> = acked
                .iter()
                .filter(|k| !handled.contains_key(**k))
                .collect();
            let unexpected: Vec<_> = handled.keys().filter(|k| !tried.contains(*k)).collect();
            let (repeated, after_kill) = repeats(cluster, &observed.invocations, |i, e| match e {
                Handled::Event { data } if i.function == function => Some(data.clone()),
                Handled::Object { key } if i.function == function => Some(key.clone()),
                _ => None,
            });
            println!(
                "{what}: {} tried, {} acknowledged, {} handled, lost {}, unexpected {}, repeated deliveries {repeated} ({after_kill} after a kill)",
                tried.len(),
                acked.len(),
                handled.len(),
                lost.len(),
                unexpected.len(),
            );
            self.check(&format!("{what} acknowledged but never handled"), &lost);
            self.check(&format!("{what} handled but never sent"), &unexpected);
        }
    }

    /// Table writes: exactly one change record per acknowledged write,
    /// none for a write never sent, and every record handled. `records`
    /// is the whole stream: seq -> (key, version, write id).
    fn table(
        &mut self,
        sent: &Sent,
        observed: &Observed,
        records: &BTreeMap<u64, (String, u64, String)>,
    ) {
        let handled = &observed.counts.records;
        let mut by_write: HashMap<&str, Vec<u64>> = HashMap::new();
        let mut by_version: HashMap<(&str, u64), usize> = HashMap::new();
        for (seq, (key, version, write)) in records {
            by_write.entry(write.as_str()).or_default().push(*seq);
            *by_version.entry((key.as_str(), *version)).or_default() += 1;
        }
        let without: Vec<_> = sent
            .writes_acked
            .iter()
            .filter(|(write, (key, version))| {
                let seqs = by_write.get(write.as_str()).map_or(&[][..], Vec::as_slice);
                !matches!(seqs, [seq] if records[seq].1 == *version)
                    || by_version.get(&(key.as_str(), *version)) != Some(&1)
            })
            .collect();
        let never_sent: Vec<_> = records
            .values()
            .filter(|(_, _, write)| !sent.writes_tried.contains_key(write))
            .collect();
        let doubled: Vec<_> = by_write.iter().filter(|(_, seqs)| seqs.len() > 1).collect();
        let unhandled: Vec<_> = records
            .keys()
            .filter(|seq| !handled.contains_key(seq))
            .collect();
        let unlike: Vec<_> = handled
            .iter()
            .filter(|(seq, (key, write, _))| {
                records
                    .get(seq)
                    .is_none_or(|(k, _, w)| k != key || w != write)
            })
            .collect();
        let deliveries: usize = handled.values().map(|(_, _, n)| n).sum();
        println!(
            "table writes: {} tried, {} acknowledged, {} change records, {deliveries} handled ({} repeated), acknowledged without exactly one record {}, records never sent {}",
            sent.writes_tried.len(),
            sent.writes_acked.len(),
            records.len(),
            deliveries - handled.len(),
            without.len(),
            never_sent.len(),
        );
        self.check(
            "acknowledged table writes without exactly one change record",
            &without,
        );
        self.check("change records of writes never sent", &never_sent);
        self.check("writes with more than one change record", &doubled);
        self.check("change records never handled", &unhandled);
        self.check("handled records unlike the stream's", &unlike);
    }

    /// Stream lanes: each fence (of any unit) held by one node, every
    /// invocation under a lease its node took, no two invocations of a lane
    /// at once, and one key's records in order within each hold.
    fn lanes(&mut self, cluster: &Cluster, observed: &Observed) {
        let mut fences: BTreeMap<(&str, u64), BTreeSet<&str>> = BTreeMap::new();
        for t in &observed.taken {
            fences
                .entry((t.lease.as_str(), t.fence))
                .or_default()
                .insert(t.node.as_str());
        }
        let shared: Vec<_> = fences.iter().filter(|(_, nodes)| nodes.len() > 1).collect();
        self.check("lease fences taken by several nodes", &shared);

        let now = now_us();
        let (mut mixed, mut unleased) = (Vec::new(), Vec::new());
        let mut lanes: BTreeMap<u32, Vec<Run>> = BTreeMap::new();
        for (index, invocation) in observed.invocations.iter().enumerate() {
            if invocation.function != "streamed" {
                continue;
            }
            let incarnation = &cluster.incarnations[invocation.incarnation];
            let of: BTreeSet<u32> = invocation
                .events
                .iter()
                .filter_map(|e| match e {
                    Handled::Record { key, .. } => Some(key_lane(key, LANES)),
                    _ => None,
                })
                .collect();
            let lane = match of.iter().collect::<Vec<_>>()[..] {
                [lane] => *lane,
                [] => continue,
                _ => {
                    mixed.push(invocation);
                    continue;
                }
            };
            let Some(&hold) = invocation.lanes_taken.get(&lane) else {
                unleased.push((&incarnation.node, lane, invocation));
                continue;
            };
            lanes.entry(lane).or_default().push(Run {
                begin: invocation.begin_us,
                // Cut off by SIGKILL: over by the time the process was gone.
                end: invocation
                    .end_us
                    .unwrap_or(incarnation.killed_us.unwrap_or(now)),
                node: &incarnation.node,
                fence: hold.fence,
                hold: (invocation.incarnation, hold.take),
                invocation: index,
            });
        }
        self.check("invocations with records of several lanes", &mixed);
        self.check(
            "invocations of a lane on a node that had not taken its lease",
            &unleased,
        );
        let (mut overlaps, mut disorder) = (Vec::new(), Vec::new());
        let mut moves = 0;
        for (lane, runs) in &mut lanes {
            runs.sort_by_key(|r| (r.begin, r.end));
            let mut holders = vec![runs[0].node];
            for pair in runs.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if b.begin < a.end {
                    overlaps.push(format!(
                        "lane {lane}: {} at fence {} from {} to {} us, {} at fence {} from {} to {} us",
                        a.node, a.fence, a.begin, a.end, b.node, b.fence, b.begin, b.end
                    ));
                }
                if a.node != b.node {
                    moves += 1;
                    holders.push(b.node);
                }
            }
            println!(
                "lane {lane}: {} invocations, on {}",
                runs.len(),
                holders.join(" -> ")
            );
            // Within one hold a lane reads forward; a new hold may start
            // again from the stored checkpoint.
            let mut last: HashMap<&str, ((usize, usize), u64)> = HashMap::new();
            for run in runs.iter() {
                for event in &observed.invocations[run.invocation].events {
                    let Handled::Record { seq, key, .. } = event else {
                        continue;
                    };
                    if let Some((hold, previous)) = last.insert(key, (run.hold, *seq))
                        && hold == run.hold
                        && previous >= *seq
                    {
                        disorder.push((key.clone(), previous, *seq, run.node));
                    }
                }
            }
        }
        let schedule_takes = observed
            .taken
            .iter()
            .filter(|t| t.lease == "schedule:beat")
            .count();
        println!(
            "stream lanes: {} invocations over {} lanes, {moves} moves between nodes ({} handed over); {} lease takes in all, {schedule_takes} of the schedule",
            lanes.values().map(Vec::len).sum::<usize>(),
            lanes.len(),
            observed.handed_over,
            observed.taken.len(),
        );
        self.check("invocations of one lane at the same time", &overlaps);
        self.check(
            "records of one key handled out of order within one hold of its lane (key, seq, then seq, node)",
            &disorder,
        );
    }

    /// Ticks: one event per tick, every tick up to the stop handled (the
    /// drain waited for it), repeated only after a kill.
    fn ticks(&mut self, cluster: &Cluster, observed: &Observed, stopped_ms: i64) {
        let ticks = &observed.counts.ticks;
        let fired_twice: Vec<_> = ticks
            .iter()
            .filter(|(_, ids)| ids.iter().collect::<HashSet<_>>().len() > 1)
            .collect();
        let first = ticks.keys().map(|t| rfc3339_ms(t)).min().unwrap();
        let due = (first..=stopped_ms).step_by(1000).count();
        let (repeated, after_kill) = repeats(cluster, &observed.invocations, |_, e| match e {
            Handled::Tick { id, .. } => Some(id.clone()),
            _ => None,
        });
        println!(
            "schedule: {due} ticks due from the first to the stop, {} handled by the end, fired twice {}, repeated deliveries {repeated} ({after_kill} after a kill)",
            ticks.len(),
            fired_twice.len(),
        );
        self.check("ticks fired more than once", &fired_twice);
        if repeated != after_kill {
            self.failures.push(format!(
                "{} tick deliveries repeated without a kill of the node that had them",
                repeated - after_kill
            ));
        }
    }

    /// Every acknowledged object reads back whole, from each node in turn.
    async fn objects(&mut self, cluster: &Cluster, sent: &Sent) {
        let http = client();
        let mut unreadable = Vec::new();
        for (i, (key, bytes)) in sent.uploads_acked.iter().enumerate() {
            let admin = cluster.admin(i % NODES);
            let response = http
                .get(format!("{admin}/v1/buckets/photos/objects/{key}"))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            if status != 200 || body.as_ref() != bytes.as_slice() {
                unreadable.push((key.clone(), status.as_u16(), body.len()));
            }
        }
        self.check(
            "acknowledged objects not readable with their bytes (key, status, length)",
            &unreadable,
        );
    }

    /// Every blob under the prefix is an object's, and no upload
    /// registration is left: every node killed mid-upload came back and
    /// ended its predecessor's.
    async fn blobs(&mut self, pg: &nimbus_test_postgres::Fresh, objects: &str, sent: &Sent) {
        let blobs = s3_blobs(objects).await;
        let column = |sql: &str| -> HashSet<String> {
            nimbus_test_postgres::server()
                .query(sql)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let schema = &pg.schema;
        let referenced = column(&format!(
            "SELECT blob FROM {schema}.objects WHERE bucket = 'photos'"
        ));
        let registered = column(&format!(
            "SELECT blob FROM {schema}.uploads WHERE bucket = 'photos'"
        ));
        let orphans: Vec<_> = blobs
            .iter()
            .filter(|b| !referenced.contains(*b) && !registered.contains(*b))
            .collect();
        let held = blobs
            .iter()
            .filter(|b| !referenced.contains(*b) && registered.contains(*b))
            .count();
        let cut_off = sent.uploads_tried.len() - sent.uploads_acked.len();
        println!(
            "blobs: {} under the prefix, {} referenced by objects, {held} held by registrations of uploads cut off ({} registrations left, {cut_off} uploads unacknowledged), orphaned {}",
            blobs.len(),
            referenced.len(),
            registered.len(),
            orphans.len(),
        );
        self.check("blobs neither referenced nor registered", &orphans);
        let left: Vec<_> = registered.iter().collect();
        self.check(
            "upload registrations left after every killed node came back",
            &left,
        );
        let unreferenced: Vec<_> = blobs.iter().filter(|b| !referenced.contains(*b)).collect();
        self.check("blobs no object refers to", &unreferenced);
    }
}

/// Everything every process printed, parsed and counted.
struct Observed {
    invocations: Vec<Invocation>,
    taken: Vec<Taken>,
    counts: Counts,
    /// Lanes a node handed over to a node that joined (it stops the lane's
    /// worker, then gives the lease back).
    handed_over: usize,
}

impl Observed {
    fn of(cluster: &Cluster) -> Observed {
        let (invocations, taken) = observe(cluster);
        let counts = count(&invocations);
        let handed_over = cluster
            .incarnations
            .iter()
            .flat_map(|i| i.stderr.snapshot())
            .filter(|l| l.contains("handing the unit over") && l.contains(LANE_PREFIX))
            .count();
        Observed {
            invocations,
            taken,
            counts,
            handed_over,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_acknowledged_across_random_sigkills() {
    let test_started = Instant::now();
    let rounds = setting("NIMBUS_CRASH_ROUNDS", 10);
    let seed = setting("NIMBUS_CRASH_SEED", now_us() as usize % 1_000_000_007) as u64;
    println!("cluster crash test: seed {seed} (NIMBUS_CRASH_SEED replays it)");
    let mut rng = Rng(seed.max(1));

    let pg = nimbus_test_postgres::server().fresh();
    let objects = nimbus_test_s3::server().fresh_location();
    let mut cluster = Cluster::start(app(), pg.url.clone(), objects.clone()).await;
    let traffic = Traffic::start(&cluster.admins);

    // Rounds: a random node dies every few seconds and comes back after a
    // pause, shorter or longer than the lease.
    let mut kills = vec![0; NODES];
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(2_500 + rng.below(2_500))).await;
        let node = rng.below(NODES as u64) as usize;
        let down = Duration::from_millis(rng.below(2 * LEASE_MS));
        cluster.kill(node).await;
        kills[node] += 1;
        println!(
            "round {round}: killed node-{node} at {:?}, down {down:?}",
            test_started.elapsed()
        );
        tokio::time::sleep(down).await;
        cluster.restart(node).await;
    }
    // Traffic on the whole cluster for a last moment, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = traffic.stop().await;
    let stopped_ms = (now_us() / 1000) as i64;
    let traffic_took = test_started.elapsed();

    let drain_started = Instant::now();
    drain(&cluster, &sent, stopped_ms).await;
    let drain_took = drain_started.elapsed();

    let observed = Observed::of(&cluster);
    let mut report = Report::default();
    report.deliveries(&cluster, &sent, &observed);
    report.table(&sent, &observed, &stream(&cluster.admin(0)).await);
    report.lanes(&cluster, &observed);
    report.ticks(&cluster, &observed, stopped_ms);
    report.objects(&cluster, &sent).await;
    report.blobs(&pg, &objects, &sent).await;
    println!(
        "cluster crash test: {rounds} SIGKILLs (per node {kills:?}), traffic {traffic_took:?}, drain {drain_took:?}, total {:?}",
        test_started.elapsed()
    );
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
}

/// The names of the blobs under `location`'s `photos` bucket, listed
/// behind Nimbus's back.
async fn s3_blobs(location: &str) -> HashSet<String> {
    use object_store::ObjectStore as _;
    use tokio_stream::StreamExt as _;
    let server = nimbus_test_s3::server();
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(nimbus_test_s3::BUCKET)
        .with_region(nimbus_test_s3::REGION)
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_access_key_id(nimbus_test_s3::ACCESS_KEY_ID)
        .with_secret_access_key(nimbus_test_s3::SECRET_ACCESS_KEY)
        .build()
        .unwrap();
    let prefix = location
        .strip_prefix(&format!("s3://{}/", nimbus_test_s3::BUCKET))
        .unwrap();
    let mut listing = s3.list(Some(&object_store::path::Path::from(format!(
        "{prefix}/photos"
    ))));
    let mut names = HashSet::new();
    while let Some(meta) = listing.next().await {
        names.insert(meta.unwrap().location.filename().unwrap().to_owned());
    }
    names
}
