//! Concurrency cases: two handles on one store (`open` called twice, as two
//! processes would open it), with many tasks racing across both. A message
//! is leased to one receiver, a dedup id stores one message, a conditional
//! write loses no update, a schedule tick fires once, a stream reader
//! running alongside the writers never skips a record that commits behind
//! the position it has read to, an orphan sweep never takes a blob
//! another handle is uploading or has committed, deployment ids have no
//! gaps and one digest makes one deployment, and a prune never takes the
//! active deployment or a component a deployment (or a deploy under way)
//! names.
//!
//! Every case is bounded: each race runs under [`CASE_LIMIT`] and every loop
//! under a named iteration cap, so a backend that deadlocks or starves a
//! handle fails with a message instead of hanging the suite.

use crate::bucket::{BucketStore, NewObject};
use crate::deployment::{
    COMPONENT_GRACE_MS, Deployment, DeploymentStore, NewDeployment, component_digest,
};
use crate::queue::{QueueConfig, QueueStore, SendMessage};
use crate::schedule::ScheduleStore;
use crate::table::{
    ChangeKind, ChangeRecord, ConditionFailed, ItemKey, PutCondition, StreamView, TableConfig,
    TableStore,
};
use crate::{ManualClock, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Barrier;

const START_MS: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 86_400_000;
/// How long one race may take before the case is declared stuck.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// Tasks in each race, split evenly over the two handles.
const RACERS: usize = 8;
const QUEUE: &str = "jobs";

/// Two independent handles on the same (fresh) storage, sharing one clock.
async fn two_handles<S, F>(open: &impl Fn(ManualClock) -> F) -> [Arc<S>; 2]
where
    F: Future<Output = S>,
{
    let clock = ManualClock::new(START_MS);
    let first = open(clock.clone()).await;
    let second = open(clock).await;
    [Arc::new(first), Arc::new(second)]
}

/// Runs `work` to completion or fails the case after [`CASE_LIMIT`].
async fn bounded<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(CASE_LIMIT, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CASE_LIMIT:?}"))
}

/// Waits for a spawned task, re-raising its panic with its own message.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Spawns `tasks` tasks released together by a barrier, task `i` getting
/// `[its own handle, the other handle]` (alternating), and returns their
/// results in task order.
async fn race<S, T, Fut>(
    what: &str,
    handles: &[Arc<S>; 2],
    tasks: usize,
    work: impl Fn(usize, [Arc<S>; 2]) -> Fut,
) -> Vec<T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(tasks));
    let running: Vec<_> = (0..tasks)
        .map(|i| {
            let start = start.clone();
            let task = work(i, [handles[i % 2].clone(), handles[(i + 1) % 2].clone()]);
            tokio::spawn(async move {
                start.wait().await;
                task.await
            })
        })
        .collect();
    bounded(what, async {
        let mut results = Vec::with_capacity(tasks);
        for task in running {
            results.push(joined(task).await);
        }
        results
    })
    .await
}

fn queue_config(dedup_window_ms: u64) -> QueueConfig {
    QueueConfig {
        name: QUEUE.to_owned(),
        // Far longer than any case runs, and the clock never moves anyway:
        // nothing leased comes back.
        visibility_timeout_ms: 600_000,
        retention_ms: 4 * DAY_MS,
        delay_ms: 0,
        max_message_bytes: 256 * 1024,
        dedup_window_ms,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

fn msg(body: String) -> SendMessage {
    SendMessage {
        body: body.into_bytes(),
        ..SendMessage::default()
    }
}

fn table_config(name: &str, stream: Option<StreamView>) -> TableConfig {
    TableConfig {
        name: name.to_owned(),
        partition_key: "id".to_owned(),
        sort_key: None,
        stream,
        stream_retention_ms: DAY_MS,
        max_item_bytes: 1024,
    }
}

fn item_key(id: &str) -> ItemKey {
    ItemKey {
        partition: id.to_owned(),
        sort: None,
    }
}

pub async fn a_second_handle_sees_what_the_first_committed<
    S: QueueStore + TableStore + ScheduleStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let [a, b] = two_handles(&open).await;
    a.declare_queues(&[queue_config(0)]).await.unwrap();
    assert_eq!(b.queues().await.unwrap(), vec![queue_config(0)]);
    let sent = a.send(QUEUE, vec![msg("hello".into())]).await.unwrap();
    let got = b.receive(QUEUE, 10, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].message_id.as_str(), got[0].body.as_slice()),
        (sent[0].message_id.as_str(), b"hello".as_slice())
    );
    assert!(a.receive(QUEUE, 10, None).await.unwrap().is_empty());
    a.delete(QUEUE, &got[0].receipt_handle).await.unwrap();
    assert_eq!(b.stats(QUEUE).await.unwrap().in_flight, 0);

    let table = table_config("items", Some(StreamView::NewImage));
    a.declare_tables(std::slice::from_ref(&table))
        .await
        .unwrap();
    assert_eq!(b.tables().await.unwrap(), vec![table]);
    let version = b
        .put_item(
            "items",
            item_key("ann"),
            br#"{"id":"ann"}"#.to_vec(),
            PutCondition::IfAbsent,
            None,
        )
        .await
        .unwrap();
    assert_eq!(version, Ok(1));
    let item = a
        .get_item("items", &item_key("ann"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (item.document.as_slice(), item.version),
        (br#"{"id":"ann"}"#.as_slice(), 1)
    );
    let records = a.read_stream("items", 0, 10, None).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].kind, records[0].version),
        (ChangeKind::Insert, 1)
    );
    a.set_checkpoint("reader", records[0].seq, None)
        .await
        .unwrap();
    assert_eq!(b.checkpoint("reader").await.unwrap(), Some(records[0].seq));

    b.register_schedule("nightly", START_MS).await.unwrap();
    let tick_ms = START_MS + 60_000;
    assert!(
        a.fire("nightly", tick_ms, QUEUE, msg("tick".into()), None)
            .await
            .unwrap()
    );
    assert!(
        !b.fire("nightly", tick_ms, QUEUE, msg("again".into()), None)
            .await
            .unwrap()
    );
    let state = b.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!(state.last_fired_ms, Some(tick_ms));
}

/// Messages sent before the receivers race.
const MESSAGES: usize = 200;
/// Messages per send call while filling the queue.
const SEND_BATCH: usize = 20;
/// At most this many receives per receiver before it is called stuck.
const RECEIVES_MAX: usize = 1_000;

pub async fn racing_receives_never_lease_one_message_twice<
    S: QueueStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    handles[0].declare_queues(&[queue_config(0)]).await.unwrap();
    let mut sent = BTreeSet::new();
    for batch in 0..MESSAGES / SEND_BATCH {
        let messages = (0..SEND_BATCH)
            .map(|i| msg(format!("message {}", batch * SEND_BATCH + i)))
            .collect();
        let receipts = handles[batch % 2].send(QUEUE, messages).await.unwrap();
        sent.extend(receipts.into_iter().map(|r| r.message_id));
    }
    assert_eq!(sent.len(), MESSAGES);

    // Each receiver leases from its own handle and deletes through the
    // other, so a receipt must hold across handles too.
    let leased = race(
        "the racing receivers",
        &handles,
        RACERS,
        |task, [mine, other]| async move {
            let mut ids = Vec::new();
            for _ in 0..RECEIVES_MAX {
                let batch = mine.receive(QUEUE, 7, None).await.unwrap();
                if batch.is_empty() {
                    return ids;
                }
                for message in batch {
                    assert_eq!(
                        message.receive_count, 1,
                        "message {} was received before",
                        message.message_id
                    );
                    other
                        .delete(QUEUE, &message.receipt_handle)
                        .await
                        .unwrap_or_else(|e| {
                            panic!(
                                "receiver {task} could not delete message {} with its receipt: {e}",
                                message.message_id
                            )
                        });
                    ids.push(message.message_id);
                }
            }
            panic!("receiver {task} still found messages after {RECEIVES_MAX} receives")
        },
    )
    .await;

    let mut times_leased: BTreeMap<&str, usize> = BTreeMap::new();
    for id in leased.iter().flatten() {
        *times_leased.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times_leased.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "messages leased more than once: {twice:?}"
    );
    let received: BTreeSet<String> = times_leased.keys().map(|id| (*id).to_owned()).collect();
    let missed: Vec<_> = sent.difference(&received).collect();
    assert!(missed.is_empty(), "messages never received: {missed:?}");
    assert_eq!(received, sent);
    for handle in &handles {
        let stats = handle.stats(QUEUE).await.unwrap();
        assert_eq!((stats.visible, stats.in_flight, stats.delayed), (0, 0, 0));
    }
}

/// Tasks sending, receiving and deleting at once through one handle.
const BUSY_TASKS: usize = 32;
/// Messages each busy task sends, one per call.
const BUSY_SENDS: usize = 8;

/// Many requests in flight on one handle at once (a backend may group them
/// into shared commits): every message is stored once with its own body,
/// leased once, and deleted once; of two deletes racing with one receipt,
/// exactly one succeeds.
pub async fn busy_tasks_on_one_handle_send_receive_and_delete_each_message_once<
    S: QueueStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = Arc::new(open(ManualClock::new(START_MS)).await);
    store.declare_queues(&[queue_config(0)]).await.unwrap();
    let handles = [store.clone(), store.clone()];
    let results = race(
        "the busy tasks",
        &handles,
        BUSY_TASKS,
        |task, [store, _]| async move {
            let mut sent = Vec::new();
            let mut received = Vec::new();
            for i in 0..BUSY_SENDS {
                let body = format!("task {task} message {i}");
                let receipts = store.send(QUEUE, vec![msg(body.clone())]).await.unwrap();
                assert_eq!(receipts.len(), 1);
                sent.push((receipts[0].message_id.clone(), body));
                for message in store.receive(QUEUE, 2, None).await.unwrap() {
                    assert_eq!(
                        message.receive_count, 1,
                        "message {} was received before",
                        message.message_id
                    );
                    let (first, second) = tokio::join!(
                        store.delete(QUEUE, &message.receipt_handle),
                        store.delete(QUEUE, &message.receipt_handle)
                    );
                    let deleted = [&first, &second].iter().filter(|r| r.is_ok()).count();
                    assert_eq!(
                        deleted, 1,
                        "two deletes with one receipt: {first:?} and {second:?}"
                    );
                    assert!(
                        [first, second].contains(&Err(StoreError::StaleReceipt)),
                        "the losing delete must find the receipt stale"
                    );
                    received.push((message.message_id, String::from_utf8(message.body).unwrap()));
                }
            }
            (sent, received)
        },
    )
    .await;
    let sent: BTreeMap<String, String> = results.iter().flat_map(|(s, _)| s.clone()).collect();
    assert_eq!(
        sent.len(),
        BUSY_TASKS * BUSY_SENDS,
        "message ids must be unique"
    );
    let mut received: Vec<(String, String)> = results.into_iter().flat_map(|(_, r)| r).collect();
    // What the tasks left behind is drained here.
    for _ in 0..BUSY_TASKS * BUSY_SENDS {
        let batch = store.receive(QUEUE, 10, None).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for message in batch {
            store.delete(QUEUE, &message.receipt_handle).await.unwrap();
            received.push((message.message_id, String::from_utf8(message.body).unwrap()));
        }
    }
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, body) in &received {
        *times.entry(id.as_str()).or_default() += 1;
        assert_eq!(
            sent.get(id),
            Some(body),
            "message {id} came back with another body"
        );
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "messages received more than once: {twice:?}"
    );
    assert_eq!(times.len(), sent.len(), "every message is received");
    let stats = store.stats(QUEUE).await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (0, 0, 0));
}

/// Rounds of the dedup race, each with a fresh dedup id.
const DEDUP_ROUNDS: usize = 6;

pub async fn racing_deduplicated_sends_store_one_message<
    S: QueueStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    handles[0]
        .declare_queues(&[queue_config(5 * 60 * 1000)])
        .await
        .unwrap();
    let mut stored = Vec::new();
    for round in 0..DEDUP_ROUNDS {
        let dedup_id = format!("order-{round}");
        let receipts = race(
            "the racing deduplicated sends",
            &handles,
            RACERS,
            |task, [mine, _]| {
                let message = SendMessage {
                    dedup_id: Some(dedup_id.clone()),
                    ..msg(format!("round {round} from task {task}"))
                };
                async move {
                    let mut receipts = mine.send(QUEUE, vec![message]).await.unwrap();
                    assert_eq!(receipts.len(), 1);
                    receipts.remove(0)
                }
            },
        )
        .await;
        let firsts: Vec<_> = receipts.iter().filter(|r| !r.deduplicated).collect();
        assert_eq!(
            firsts.len(),
            1,
            "round {round}: exactly one send must store its message: {receipts:?}"
        );
        let id = &firsts[0].message_id;
        assert!(
            receipts.iter().all(|r| &r.message_id == id),
            "round {round}: every receipt must name the stored message: {receipts:?}"
        );
        stored.push(id.clone());
        let stats = handles[round % 2].stats(QUEUE).await.unwrap();
        assert_eq!(stats.visible, round as u64 + 1, "after round {round}");
    }
    let peeked: Vec<String> = handles[1]
        .peek(QUEUE, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(peeked, stored);
}

/// Stream writers (half on each handle), each owning its keys.
const STREAM_WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 3;
/// Versions written to each key, one put each.
const VERSIONS: u64 = 20;
/// Records per `read_stream` call: small, so the reader pages.
const STREAM_PAGE: u32 = 16;
/// Reads the reader may make before it is called stuck.
const STREAM_READS_MAX: usize = 200_000;
const STREAM_CONSUMER: &str = "conformance.reader";

fn stream_doc(id: &str, version: u64) -> Vec<u8> {
    format!(r#"{{"id":"{id}","v":{version}}}"#).into_bytes()
}

/// What the stream reader saw, and whether it overlapped the writers.
struct ReaderLog {
    records: Vec<ChangeRecord>,
    /// Reads that returned records before every writer had finished.
    pages_during_writes: usize,
}

pub async fn concurrent_stream_writers_never_let_a_reader_skip_a_record<
    S: TableStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    handles[0]
        .declare_tables(&[table_config("events", Some(StreamView::NewImage))])
        .await
        .unwrap();
    let writers_done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(STREAM_WRITERS + 1));

    let reader = {
        let handles = handles.clone();
        let (writers_done, start) = (writers_done.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            let mut log = ReaderLog {
                records: Vec::new(),
                pages_during_writes: 0,
            };
            let mut after = 0;
            for read in 0..STREAM_READS_MAX {
                // Read the flag first: if every write was acknowledged before
                // this read began, an empty answer means nothing is left.
                let done = writers_done.load(Ordering::SeqCst);
                let page = handles[read % 2]
                    .read_stream("events", after, STREAM_PAGE, None)
                    .await
                    .unwrap();
                let Some(last) = page.last() else {
                    if done {
                        return log;
                    }
                    tokio::task::yield_now().await;
                    continue;
                };
                after = last.seq;
                handles[(read + 1) % 2]
                    .set_checkpoint(STREAM_CONSUMER, after, None)
                    .await
                    .unwrap();
                if !done {
                    log.pages_during_writes += 1;
                }
                log.records.extend(page);
            }
            panic!("the stream reader was still reading after {STREAM_READS_MAX} reads")
        })
    };

    // Each writer alternates handles between versions, so one key's writes
    // commit through both; a writer waits for each put before the next, so
    // its keys' write order is defined.
    let writers: Vec<_> = (0..STREAM_WRITERS)
        .map(|writer| {
            let handles = handles.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let mut acknowledged = 0usize;
                for version in 1..=VERSIONS {
                    for k in 0..KEYS_PER_WRITER {
                        let id = format!("w{writer}-k{k}");
                        let written = handles[(writer + version as usize) % 2]
                            .put_item(
                                "events",
                                item_key(&id),
                                stream_doc(&id, version),
                                PutCondition::Always,
                                None,
                            )
                            .await
                            .unwrap_or_else(|e| panic!("put {id} version {version}: {e}"));
                        assert_eq!(written, Ok(version), "put {id} version {version}");
                        acknowledged += 1;
                    }
                }
                acknowledged
            })
        })
        .collect();

    let acknowledged: usize = bounded("the stream writers", async {
        let mut total = 0;
        for writer in writers {
            total += joined(writer).await;
        }
        total
    })
    .await;
    writers_done.store(true, Ordering::SeqCst);
    let log = bounded("the stream reader", joined(reader)).await;

    assert_eq!(
        acknowledged,
        STREAM_WRITERS * KEYS_PER_WRITER * VERSIONS as usize
    );
    assert!(
        log.pages_during_writes > 0,
        "the reader read nothing while the writers ran, so this case proved nothing"
    );
    let seqs: Vec<u64> = log.records.iter().map(|r| r.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers must strictly increase in what the reader read: {seqs:?}"
    );
    let mut by_key: BTreeMap<String, Vec<&ChangeRecord>> = BTreeMap::new();
    for record in &log.records {
        by_key
            .entry(record.key.partition.clone())
            .or_default()
            .push(record);
    }
    for writer in 0..STREAM_WRITERS {
        for k in 0..KEYS_PER_WRITER {
            let id = format!("w{writer}-k{k}");
            let seen: Vec<(u64, Option<&[u8]>)> = by_key
                .get(&id)
                .map(|records| {
                    records
                        .iter()
                        .map(|r| (r.version, r.new_image.as_deref()))
                        .collect()
                })
                .unwrap_or_default();
            let docs: Vec<Vec<u8>> = (1..=VERSIONS).map(|v| stream_doc(&id, v)).collect();
            let expected: Vec<(u64, Option<&[u8]>)> = (1..=VERSIONS)
                .zip(&docs)
                .map(|(v, doc)| (v, Some(doc.as_slice())))
                .collect();
            assert_eq!(
                seen, expected,
                "key {id}: the reader must see versions 1..={VERSIONS} once each, in order"
            );
        }
    }
    assert_eq!(
        log.records.len(),
        acknowledged,
        "the reader must see every acknowledged write exactly once"
    );
    let last = *seqs.last().unwrap();
    for handle in &handles {
        assert_eq!(
            handle.checkpoint(STREAM_CONSUMER).await.unwrap(),
            Some(last)
        );
        assert_eq!(handle.latest_seq("events").await.unwrap(), last);
    }
}

/// Successful increments each racer makes.
const INCREMENTS_PER_RACER: u64 = 8;
/// Attempts (a read and a conditional put) a racer may make in all.
const INCREMENT_ATTEMPTS_MAX: usize = 10_000;

fn counter_doc(n: u64) -> Vec<u8> {
    format!(r#"{{"id":"counter","n":{n}}}"#).into_bytes()
}

fn counter_value(document: &[u8]) -> u64 {
    std::str::from_utf8(document)
        .ok()
        .and_then(|text| text.strip_prefix(r#"{"id":"counter","n":"#))
        .and_then(|text| text.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "not a counter document: {}",
                String::from_utf8_lossy(document)
            )
        })
}

pub async fn racing_conditional_writes_lose_no_update<
    S: TableStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    handles[0]
        .declare_tables(&[table_config("counters", None)])
        .await
        .unwrap();
    let created = handles[1]
        .put_item(
            "counters",
            item_key("counter"),
            counter_doc(0),
            PutCondition::IfAbsent,
            None,
        )
        .await
        .unwrap();
    assert_eq!(created, Ok(1));

    // Each racer reads through alternating handles and writes through its
    // own: a write committed on one handle must be what the other reads.
    let won = race(
        "the racing increments",
        &handles,
        RACERS,
        |task, [mine, other]| async move {
            let mut versions = Vec::new();
            for attempt in 0..INCREMENT_ATTEMPTS_MAX {
                if versions.len() as u64 == INCREMENTS_PER_RACER {
                    return versions;
                }
                let reader = if attempt % 2 == 0 { &mine } else { &other };
                let item = reader
                    .get_item("counters", &item_key("counter"))
                    .await
                    .unwrap()
                    .expect("the counter exists");
                let n = counter_value(&item.document);
                let put = mine
                    .put_item(
                        "counters",
                        item_key("counter"),
                        counter_doc(n + 1),
                        PutCondition::IfVersion(item.version),
                        None,
                    )
                    .await
                    .unwrap();
                match put {
                    Ok(version) => {
                        assert_eq!(version, item.version + 1, "racer {task}");
                        versions.push(version);
                    }
                    Err(ConditionFailed { current_version }) => assert!(
                        current_version.is_some_and(|now| now > item.version),
                        "racer {task}: a failed condition on version {} must report a later one, not {current_version:?}",
                        item.version
                    ),
                }
            }
            panic!("racer {task} made fewer than {INCREMENTS_PER_RACER} increments in {INCREMENT_ATTEMPTS_MAX} attempts")
        },
    )
    .await;

    let increments = RACERS as u64 * INCREMENTS_PER_RACER;
    let mut versions: Vec<u64> = won.into_iter().flatten().collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=increments + 1).collect::<Vec<_>>(),
        "each version must be won by exactly one increment"
    );
    for handle in &handles {
        let item = handle
            .get_item("counters", &item_key("counter"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (counter_value(&item.document), item.version),
            (increments, increments + 1)
        );
    }
}

/// Ticks the fire race is run for.
const TICKS: u64 = 6;

pub async fn racing_schedule_fires_fire_a_tick_once<
    S: QueueStore + ScheduleStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    handles[0].declare_queues(&[queue_config(0)]).await.unwrap();
    handles[1]
        .register_schedule("racing", START_MS)
        .await
        .unwrap();
    for tick in 1..=TICKS {
        let tick_ms = START_MS + tick * 60_000;
        let fired = race(
            "the racing fires",
            &handles,
            RACERS,
            |task, [mine, _]| async move {
                mine.fire(
                    "racing",
                    tick_ms,
                    QUEUE,
                    msg(format!("tick {tick} by racer {task}")),
                    None,
                )
                .await
                .unwrap()
            },
        )
        .await;
        assert_eq!(
            fired.iter().filter(|f| **f).count(),
            1,
            "tick {tick}: exactly one fire must report true: {fired:?}"
        );
        let stats = handles[tick as usize % 2].stats(QUEUE).await.unwrap();
        assert_eq!(
            stats.visible, tick,
            "one message per tick after tick {tick}"
        );
    }
    let bodies: Vec<String> = handles[0]
        .peek(QUEUE, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), TICKS as usize);
    for (tick, body) in (1..=TICKS).zip(&bodies) {
        assert!(
            body.starts_with(&format!("tick {tick} by racer ")),
            "message {tick} is {body:?}"
        );
    }
    let last_ms = START_MS + TICKS * 60_000;
    let state = handles[1].schedule_state("racing").await.unwrap().unwrap();
    assert_eq!(
        (state.mark_ms, state.last_fired_ms),
        (last_ms, Some(last_ms))
    );
}

/// Uploads each racing uploader makes.
const UPLOADS_PER_RACER: usize = 25;
/// Sweeps each racing sweeper runs.
const SWEEPS_PER_RACER: usize = 40;

pub async fn sweeps_racing_uploads_never_take_a_blob_in_flight_or_committed<
    S: BucketStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    // Blobs that exist: an uploader adds its blob once registered, where the
    // real one writes the bytes; sweepers look only at these, as a sweep
    // lists only blobs in the object store.
    let written: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let uploads_done = Arc::new(AtomicBool::new(false));
    let results = race(
        "uploads racing sweeps",
        &handles,
        RACERS,
        |task, [mine, _]| {
            let (written, uploads_done) = (written.clone(), uploads_done.clone());
            async move {
                let mut swept = Vec::new();
                if task % 2 == 0 {
                    for n in 0..UPLOADS_PER_RACER {
                        let blob = format!("blob-{task}-{n}");
                        mine.begin_upload("b", &blob, "node-a").await.unwrap();
                        written.lock().unwrap().push(blob.clone());
                        let object = NewObject {
                            key: blob.clone(),
                            size: 1,
                            etag: "e".to_owned(),
                            content_type: "text/plain".to_owned(),
                            user_metadata: BTreeMap::new(),
                            blob,
                        };
                        mine.commit_put("b", object, Box::new(|_| Vec::new()))
                            .await
                            .unwrap();
                    }
                    uploads_done.store(true, Ordering::SeqCst);
                } else {
                    for _ in 0..SWEEPS_PER_RACER {
                        // The bound is far away: registrations stand.
                        mine.expire_uploads(DAY_MS).await.unwrap();
                        let names = written.lock().unwrap().clone();
                        swept.extend(mine.unreferenced_blobs("b", names).await.unwrap());
                    }
                }
                swept
            }
        },
    )
    .await;
    assert!(uploads_done.load(Ordering::SeqCst));
    let swept: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        swept.is_empty(),
        "a sweep took blobs that were being uploaded or committed: {swept:?}"
    );
    // Every upload committed, each blob referenced.
    let all = written.lock().unwrap().clone();
    assert_eq!(all.len(), RACERS / 2 * UPLOADS_PER_RACER);
    assert!(
        handles[1]
            .unreferenced_blobs("b", all)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deployments each racer creates of its own, besides the shared one.
const DEPLOYS_PER_RACER: usize = 6;

/// Ids are handed out under contention without gaps or repeats, and
/// racing creates of one version make one deployment.
pub async fn racing_deployments_make_one_per_digest_numbered_without_gaps<
    S: DeploymentStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let handles = two_handles(&open).await;
    let component = component_digest(b"api");
    handles[0]
        .put_component(&component, b"api".to_vec())
        .await
        .unwrap();
    let created = race(
        "racing deployment creates",
        &handles,
        RACERS,
        |task, [mine, _]| {
            let component = component.clone();
            async move {
                let mut made = Vec::new();
                for n in 0..DEPLOYS_PER_RACER {
                    for digest in ["shared".to_owned(), format!("v-{task}-{n}")] {
                        let new = NewDeployment {
                            manifest: String::new(),
                            components: BTreeMap::from([("api".to_owned(), component.clone())]),
                            digest,
                        };
                        made.push(mine.create_deployment(new).await.unwrap());
                    }
                }
                made
            }
        },
    )
    .await;
    let created: Vec<Deployment> = created.into_iter().flatten().collect();
    let shared: BTreeSet<u64> = created
        .iter()
        .filter(|d| d.digest == "shared")
        .map(|d| d.id)
        .collect();
    assert_eq!(shared.len(), 1, "one deployment of the shared digest");
    let mut ids: Vec<u64> = created
        .iter()
        .filter(|d| d.digest != "shared")
        .map(|d| d.id)
        .chain(shared)
        .collect();
    ids.sort_unstable();
    let expected: Vec<u64> = (1..=(RACERS * DEPLOYS_PER_RACER) as u64 + 1).collect();
    assert_eq!(ids, expected, "ids from 1, each once, without gaps");
    for handle in &handles {
        let listed = handle.deployments(u32::MAX).await.unwrap();
        assert_eq!(listed.len(), expected.len());
    }
}

/// Rounds each racer runs in the deployment race.
const DEPLOY_ROUNDS: usize = 8;
/// Deployments (and their own components) made before the race.
const DEPLOYMENTS_BEFORE: usize = 8;

/// Prunes racing activations and deploys never remove the active deployment
/// nor a component a deployment names, and a deploy (ask which components
/// are missing, upload those, create) always finds what it was told is
/// kept, even with every component past its grace.
pub async fn prunes_racing_activations_and_deploys_keep_what_is_active_or_named<
    S: DeploymentStore + 'static,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let handles = [
        Arc::new(open(clock.clone()).await),
        Arc::new(open(clock.clone()).await),
    ];
    let bytes: Vec<Vec<u8>> = (0..DEPLOYMENTS_BEFORE)
        .map(|i| format!("component {i}").into_bytes())
        .chain([b"shared".to_vec()])
        .collect();
    let digests: Vec<String> = bytes.iter().map(|b| component_digest(b)).collect();
    let shared = digests[DEPLOYMENTS_BEFORE].clone();
    for (digest, bytes) in digests.iter().zip(&bytes) {
        handles[0]
            .put_component(digest, bytes.clone())
            .await
            .unwrap();
    }
    for (i, digest) in digests[..DEPLOYMENTS_BEFORE].iter().enumerate() {
        let new = NewDeployment {
            manifest: String::new(),
            components: BTreeMap::from([
                ("f".to_owned(), digest.clone()),
                ("g".to_owned(), shared.clone()),
            ]),
            digest: format!("before-{i}"),
        };
        handles[i % 2].create_deployment(new).await.unwrap();
    }
    handles[0].activate(1).await.unwrap();
    clock.advance_ms(COMPONENT_GRACE_MS + 1);

    let own: Arc<Vec<String>> = Arc::new(digests[..DEPLOYMENTS_BEFORE].to_vec());
    let by_digest: Arc<BTreeMap<String, Vec<u8>>> =
        Arc::new(digests.iter().cloned().zip(bytes).collect());
    race(
        "prunes racing activations and deploys",
        &handles,
        RACERS,
        |task, [mine, _]| {
            let (own, by_digest) = (own.clone(), by_digest.clone());
            let shared = shared.clone();
            async move {
                for n in 0..DEPLOY_ROUNDS {
                    match task % 4 {
                        0 => {
                            let id = ((task + n) % DEPLOYMENTS_BEFORE) as u64 + 1;
                            match mine.activate(id).await {
                                Ok(()) | Err(StoreError::DeploymentNotFound(_)) => {}
                                Err(e) => panic!("activating {id} failed: {e}"),
                            }
                        }
                        2 => {
                            let own = own[(task + n) % DEPLOYMENTS_BEFORE].clone();
                            let asked = [own.clone(), shared.clone()];
                            for digest in mine.missing_components(&asked).await.unwrap() {
                                mine.put_component(&digest, by_digest[&digest].clone())
                                    .await
                                    .unwrap();
                            }
                            let new = NewDeployment {
                                manifest: String::new(),
                                components: BTreeMap::from([
                                    ("f".to_owned(), own),
                                    ("g".to_owned(), shared.clone()),
                                ]),
                                digest: format!("deploy-{task}-{n}"),
                            };
                            let made = mine.create_deployment(new).await.unwrap_or_else(|e| {
                                panic!(
                                    "deploy {task}-{n} lost a component it was told is kept: {e}"
                                )
                            });
                            // A prune keeping one may take it before it is
                            // active, once another deploy made a newer one.
                            match mine.activate(made.id).await {
                                Ok(()) | Err(StoreError::DeploymentNotFound(_)) => {}
                                Err(e) => {
                                    panic!("deploy {task}-{n} could not activate {}: {e}", made.id)
                                }
                            }
                        }
                        _ => {
                            mine.prune_deployments(1).await.unwrap();
                        }
                    }
                }
            }
        },
    )
    .await;

    let active = handles[0].active_deployment_id().await.unwrap();
    assert_eq!(
        handles[1].active_deployment_id().await.unwrap(),
        active,
        "both handles see the same active deployment"
    );
    let active = active.expect("a deployment is active");
    assert!(
        handles[1].deployment(active).await.unwrap().is_some(),
        "the active deployment {active} was pruned"
    );
    for summary in handles[1].deployments(u32::MAX).await.unwrap() {
        let deployment = handles[0].deployment(summary.id).await.unwrap().unwrap();
        for (function, digest) in &deployment.components {
            assert!(
                handles[1].component(digest).await.unwrap().is_some(),
                "deployment {}'s component for `{function}` was pruned",
                deployment.id
            );
        }
    }
}
