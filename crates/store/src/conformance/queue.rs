//! Queue store cases. Each takes a way to open the store under test on a
//! manual clock (opening twice must reach the same data).

use crate::queue::{NackOptions, QueueConfig, QueueStats, QueueStore, SendMessage};
use crate::{ManualClock, StoreError};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;

fn config(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        visibility_timeout_ms: 30_000,
        retention_ms: 4 * 24 * 3600 * 1000,
        delay_ms: 0,
        max_message_bytes: 256 * 1024,
        dedup_window_ms: 5 * 60 * 1000,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

fn msg(body: &str) -> SendMessage {
    SendMessage {
        body: body.as_bytes().to_vec(),
        ..SendMessage::default()
    }
}

async fn setup<S, F, O>(open: O, queues: &[QueueConfig]) -> (S, ManualClock)
where
    S: QueueStore,
    F: Future<Output = S>,
    O: Fn(ManualClock) -> F,
{
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.declare_queues(queues).await.unwrap();
    (store, clock)
}

async fn bodies(store: &impl QueueStore, queue: &str, max: u32) -> Vec<String> {
    store
        .receive(queue, max, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect()
}

pub async fn sent_messages_are_received_oldest_first_each_with_a_receipt_handle<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = setup(open, &[config("q")]).await;
    let receipts = store
        .send("q", vec![msg("a"), msg("b"), msg("c")])
        .await
        .unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(receipts.iter().all(|r| !r.deduplicated));
    let got = store.receive("q", 10, None).await.unwrap();
    let order: Vec<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(order, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(got[0].message_id, receipts[0].message_id);
    assert!(
        got.iter()
            .all(|m| m.receive_count == 1 && !m.receipt_handle.is_empty())
    );
    assert_eq!(got[0].sent_at, START_MS);
}

pub async fn a_received_message_stays_invisible_until_its_lease_expires_by_the_store_clock<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store.send("q", vec![msg("a")]).await.unwrap();
    assert_eq!(bodies(&store, "q", 10).await, ["a"]);
    assert!(bodies(&store, "q", 10).await.is_empty());
    clock.advance_ms(29_999);
    assert!(bodies(&store, "q", 10).await.is_empty());
    clock.advance_ms(1);
    let again = store.receive("q", 10, None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

pub async fn stale_receipt_handle_cannot_delete_or_change_visibility<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q"), config("r")]).await;
    store.send("q", vec![msg("a")]).await.unwrap();
    let first = store.receive("q", 1, None).await.unwrap().remove(0);
    // The current handle, given for another queue, names nothing there.
    assert_eq!(
        store.delete("r", &first.receipt_handle).await,
        Err(StoreError::StaleReceipt)
    );
    clock.advance_ms(30_000);
    let second = store.receive("q", 1, None).await.unwrap().remove(0);
    assert_ne!(first.receipt_handle, second.receipt_handle);
    assert_eq!(
        store.delete("q", &first.receipt_handle).await,
        Err(StoreError::StaleReceipt)
    );
    assert_eq!(
        store.change_visibility("q", &first.receipt_handle, 0).await,
        Err(StoreError::StaleReceipt)
    );
    for hostile in ["not-a-handle", "1.", ".x", "99999999999999999999.x", "-1.x"] {
        assert_eq!(
            store.delete("q", hostile).await,
            Err(StoreError::StaleReceipt),
            "{hostile}"
        );
    }
    store.delete("q", &second.receipt_handle).await.unwrap();
}

pub async fn delete_with_the_current_handle_removes_the_message<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store.send("q", vec![msg("a")]).await.unwrap();
    let m = store.receive("q", 1, None).await.unwrap().remove(0);
    store.delete("q", &m.receipt_handle).await.unwrap();
    clock.advance_ms(60_000);
    assert!(bodies(&store, "q", 10).await.is_empty());
    // Deleting twice: the handle is no longer current.
    assert_eq!(
        store.delete("q", &m.receipt_handle).await,
        Err(StoreError::StaleReceipt)
    );
}

pub async fn change_visibility_moves_the_lease_end<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store.send("q", vec![msg("a"), msg("b")]).await.unwrap();
    let got = store.receive("q", 2, None).await.unwrap();
    store
        .change_visibility("q", &got[0].receipt_handle, 0)
        .await
        .unwrap();
    store
        .change_visibility("q", &got[1].receipt_handle, 120_000)
        .await
        .unwrap();
    let a = store.receive("q", 10, None).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].body, b"a");
    store.delete("q", &a[0].receipt_handle).await.unwrap();
    clock.advance_ms(119_999);
    assert!(bodies(&store, "q", 10).await.is_empty());
    clock.advance_ms(1);
    assert_eq!(bodies(&store, "q", 10).await, ["b"]);
}

pub async fn delayed_messages_become_visible_when_due<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let delayed = QueueConfig {
        delay_ms: 5_000,
        ..config("q")
    };
    let (store, clock) = setup(open, &[delayed]).await;
    let mut quick = msg("quick");
    quick.delay_ms = Some(0);
    let mut slow = msg("slow");
    slow.delay_ms = Some(10_000);
    store
        .send("q", vec![msg("default"), quick, slow])
        .await
        .unwrap();
    assert_eq!(bodies(&store, "q", 10).await, ["quick"]);
    assert_eq!(store.stats("q").await.unwrap().delayed, 2);
    clock.advance_ms(5_000);
    assert_eq!(bodies(&store, "q", 10).await, ["default"]);
    clock.advance_ms(5_000);
    assert_eq!(bodies(&store, "q", 10).await, ["slow"]);
}

pub async fn messages_past_retention_are_expired<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let short = QueueConfig {
        retention_ms: 60_000,
        ..config("q")
    };
    let (store, clock) = setup(open, &[short]).await;
    store.send("q", vec![msg("old")]).await.unwrap();
    clock.advance_ms(30_000);
    store.send("q", vec![msg("young")]).await.unwrap();
    clock.advance_ms(30_000);
    // Expired messages are never delivered, swept or not.
    assert_eq!(bodies(&store, "q", 10).await, ["young"]);
    assert_eq!(store.expire().await.unwrap(), 1);
    assert_eq!(store.stats("q").await.unwrap().in_flight, 1);
}

pub async fn a_repeated_dedup_id_within_the_window_is_accepted_but_stored_once<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    let with_id = |body: &str| SendMessage {
        dedup_id: Some("order-1".to_owned()),
        ..msg(body)
    };
    let first = store.send("q", vec![with_id("a")]).await.unwrap().remove(0);
    let repeat = store.send("q", vec![with_id("b")]).await.unwrap().remove(0);
    assert!(!first.deduplicated && repeat.deduplicated);
    assert_eq!(repeat.message_id, first.message_id);
    // Within one batch too.
    let batch = store.send("q", vec![with_id("c"), msg("d")]).await.unwrap();
    assert!(batch[0].deduplicated && !batch[1].deduplicated);
    assert_eq!(bodies(&store, "q", 10).await, ["a", "d"]);
    clock.advance_ms(5 * 60 * 1000);
    let later = store.send("q", vec![with_id("e")]).await.unwrap().remove(0);
    assert!(!later.deduplicated);
}

pub async fn a_message_moves_to_the_dead_letter_queue_after_max_receive_count<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let source = QueueConfig {
        max_receive_count: Some(2),
        dead_letter_queue: Some("dlq".to_owned()),
        ..config("q")
    };
    let (store, clock) = setup(open, &[source, config("dlq")]).await;
    store.send("q", vec![msg("poison")]).await.unwrap();
    clock.advance_ms(1_000);
    for attempt in 1..=2 {
        let m = store.receive("q", 1, None).await.unwrap().remove(0);
        assert_eq!(m.receive_count, attempt);
        // The first receive's time, kept by the second.
        assert_eq!(m.first_received_at, START_MS + 1_000);
        clock.advance_ms(500);
        let error = format!("failed on attempt {attempt}");
        store
            .nack(
                "q",
                &m.receipt_handle,
                NackOptions {
                    error: Some(error),
                    visible_after_ms: 0,
                },
            )
            .await
            .unwrap();
    }
    // The third receive finds the count exhausted: nothing is delivered, and
    // the message is in the DLQ with its history.
    assert!(store.receive("q", 1, None).await.unwrap().is_empty());
    assert_eq!(store.stats("q").await.unwrap(), QueueStats::default());
    let dead = store.peek("dlq", 10, None).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"poison");
    assert_eq!(dead[0].sent_at, START_MS);
    assert_eq!(dead[0].receive_count, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("failed on attempt 2"));
    assert_eq!(dead[0].source_queue.as_deref(), Some("q"));
}

pub async fn nack_records_the_error_and_the_retry_time<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store.send("q", vec![msg("a")]).await.unwrap();
    let m = store.receive("q", 1, None).await.unwrap().remove(0);
    let options = NackOptions {
        error: Some("boom".to_owned()),
        visible_after_ms: 2_000,
    };
    store
        .nack("q", &m.receipt_handle, options.clone())
        .await
        .unwrap();
    assert_eq!(
        store.nack("q", &m.receipt_handle, options).await,
        Err(StoreError::StaleReceipt)
    );
    assert!(bodies(&store, "q", 1).await.is_empty());
    clock.advance_ms(2_000);
    assert_eq!(
        store.peek("q", 1, None).await.unwrap()[0]
            .last_error
            .as_deref(),
        Some("boom")
    );
    assert_eq!(bodies(&store, "q", 1).await, ["a"]);
}

pub async fn redrive_moves_messages_back_keeping_their_send_time<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let source = QueueConfig {
        max_receive_count: Some(1),
        dead_letter_queue: Some("dlq".to_owned()),
        ..config("q")
    };
    let (store, clock) = setup(open, &[source, config("dlq"), config("other")]).await;
    store
        .send("q", vec![msg("a"), msg("b"), msg("c")])
        .await
        .unwrap();
    store.receive("q", 3, Some(0)).await.unwrap();
    assert!(store.receive("q", 3, None).await.unwrap().is_empty());
    assert_eq!(store.stats("dlq").await.unwrap().visible, 3);
    clock.advance_ms(10_000);

    // Back to where they came from, by default.
    assert_eq!(store.redrive("dlq", None, 2).await.unwrap(), 2);
    assert_eq!(store.redrive("dlq", Some("other"), 10).await.unwrap(), 1);
    let back = store.receive("q", 10, None).await.unwrap();
    assert_eq!(back.len(), 2);
    // Their count starts again, and so does their first receive.
    assert!(back.iter().all(|m| m.receive_count == 1
        && m.sent_at == START_MS
        && m.first_received_at == START_MS + 10_000));
    assert_eq!(bodies(&store, "other", 10).await, ["c"]);
    assert_eq!(
        store.redrive("dlq", Some("missing"), 1).await,
        Err(StoreError::QueueNotFound("missing".into()))
    );
    // A message that was never dead-lettered has nowhere to go back to.
    store.send("other", vec![msg("native")]).await.unwrap();
    assert_eq!(store.redrive("other", None, 10).await.unwrap(), 0);
}

pub async fn declared_queues_are_listed_and_updated<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("b"), config("a")]).await;
    // The old settings in use (and remembered, where a backend caches them).
    store.send("a", vec![msg("before")]).await.unwrap();
    let got = store.receive("a", 1, None).await.unwrap();
    store.delete("a", &got[0].receipt_handle).await.unwrap();
    let changed = QueueConfig {
        delay_ms: 7,
        ..config("a")
    };
    store
        .declare_queues(std::slice::from_ref(&changed))
        .await
        .unwrap();
    assert_eq!(store.queues().await.unwrap(), vec![changed, config("b")]);
    // The next send already takes the new delay.
    store.send("a", vec![msg("after")]).await.unwrap();
    assert!(store.receive("a", 1, None).await.unwrap().is_empty());
    clock.advance_ms(7);
    assert_eq!(store.receive("a", 1, None).await.unwrap()[0].body, b"after");
}

pub async fn purge_and_stats_count_messages_by_state<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let short = QueueConfig {
        retention_ms: 1_000,
        ..config("short")
    };
    let (store, clock) = setup(open, &[config("q"), short.clone(), config("empty")]).await;
    let mut later = msg("later");
    later.delay_ms = Some(60_000);
    store
        .send("q", vec![msg("a"), msg("b"), later])
        .await
        .unwrap();
    store.send("short", vec![msg("gone")]).await.unwrap();
    store.receive("q", 1, None).await.unwrap();
    clock.advance_ms(1_500);
    let stats = store.stats("q").await.unwrap();
    assert_eq!((stats.visible, stats.in_flight, stats.delayed), (1, 1, 1));
    assert_eq!(stats.oldest_age_ms, Some(1_500));
    // Every queue at once, by name; a message past retention is not counted.
    assert_eq!(
        store.all_stats().await.unwrap(),
        vec![
            (config("empty"), QueueStats::default()),
            (config("q"), stats),
            (short, QueueStats::default()),
        ]
    );
    assert_eq!(store.purge("q").await.unwrap(), 3);
    assert_eq!(store.stats("q").await.unwrap(), QueueStats::default());
}

pub async fn oversize_messages_are_rejected<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let small = QueueConfig {
        max_message_bytes: 4,
        ..config("q")
    };
    let (store, _) = setup(open, &[small]).await;
    let err = store
        .send("q", vec![msg("ok"), msg("too long")])
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::MessageTooLarge { size: 8, limit: 4 });
    // A rejected batch stores nothing.
    assert_eq!(store.stats("q").await.unwrap().visible, 0);
}

/// Every backend runs `queue::check_message`: attributes count toward the
/// size, and bad attribute names, too many attributes or a bad `dedup_id`
/// refuse the whole batch before anything is stored.
pub async fn attributes_and_dedup_ids_are_held_to_the_message_limits<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let small = QueueConfig {
        max_message_bytes: 16,
        ..config("q")
    };
    let (store, _) = setup(open, &[small]).await;
    let with_attribute = |name: &str, value: &str| SendMessage {
        attributes: [(name.to_owned(), value.to_owned())].into(),
        ..msg("body")
    };
    // 4 + 5 + 7 = 16 bytes fit; one more byte of value does not.
    store
        .send("q", vec![with_attribute("color", "crimson")])
        .await
        .unwrap();
    let err = store
        .send("q", vec![msg("ok"), with_attribute("color", "crimson!")])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::MessageTooLarge {
            size: 17,
            limit: 16
        }
    );
    let too_many = SendMessage {
        attributes: (0..11).map(|i| (format!("a{i}"), String::new())).collect(),
        ..msg("")
    };
    let bad_dedup = SendMessage {
        dedup_id: Some("has space".to_owned()),
        ..msg("x")
    };
    for bad in [with_attribute("bad name", "v"), too_many, bad_dedup] {
        let err = store.send("q", vec![msg("ok"), bad]).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidMessage(_)), "{err:?}");
    }
    // Only the first send was stored.
    assert_eq!(store.stats("q").await.unwrap().visible, 1);
}

pub async fn unknown_queues_are_an_error<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = setup(open, &[config("q")]).await;
    let missing = StoreError::QueueNotFound("nope".into());
    assert_eq!(
        store.send("nope", vec![msg("a")]).await.unwrap_err(),
        missing
    );
    assert_eq!(store.receive("nope", 1, None).await.unwrap_err(), missing);
    assert_eq!(store.stats("nope").await.unwrap_err(), missing);
    assert_eq!(store.purge("nope").await.unwrap_err(), missing);
}

pub async fn peek_does_not_lease_and_delete_by_id_removes<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = setup(open, &[config("q")]).await;
    let ids: Vec<_> = store
        .send("q", vec![msg("a"), msg("b"), msg("c")])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    let page = store.peek("q", 2, None).await.unwrap();
    assert_eq!(
        page.iter()
            .map(|m| m.message_id.clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let next = store.peek("q", 2, Some(&ids[1])).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].message_id, ids[2]);
    store.delete_by_id("q", &ids[1]).await.unwrap();
    assert_eq!(
        store.delete_by_id("q", &ids[1]).await,
        Err(StoreError::MessageNotFound(ids[1].clone()))
    );
    assert_eq!(bodies(&store, "q", 10).await, ["a", "c"]);
}

pub async fn receive_returns_at_most_max_and_honours_a_visibility_override<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store
        .send("q", (0..5).map(|i| msg(&i.to_string())).collect())
        .await
        .unwrap();
    let got = store.receive("q", 2, Some(1_000)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(bodies(&store, "q", 10).await, ["2", "3", "4"]);
    clock.advance_ms(1_000);
    assert_eq!(bodies(&store, "q", 10).await, ["0", "1"]);
}

/// Callers pass durations; the largest ones must not wrap into the past or
/// take the store down (found by fuzzing `/v1`).
pub async fn durations_past_the_end_of_time_are_clamped_not_fatal<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open, &[config("q")]).await;
    store.send("q", vec![msg("a"), msg("b")]).await.unwrap();
    let leased = store.receive("q", 1, Some(u64::MAX)).await.unwrap();
    assert_eq!(leased.len(), 1);
    store
        .change_visibility("q", &leased[0].receipt_handle, u64::MAX)
        .await
        .unwrap();
    let delayed = SendMessage {
        delay_ms: Some(u64::MAX),
        ..msg("c")
    };
    store.send("q", vec![delayed]).await.unwrap();
    // Well past every ordinary lease and delay, still within retention.
    clock.advance_ms(3 * 24 * 3600 * 1000);
    assert_eq!(bodies(&store, "q", 10).await, ["b"]);
}

pub async fn messages_survive_reopening_the_store<S: QueueStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    {
        let store = open(clock.clone()).await;
        store.declare_queues(&[config("q")]).await.unwrap();
        store.send("q", vec![msg("kept")]).await.unwrap();
    }
    let store = open(clock).await;
    assert_eq!(bodies(&store, "q", 10).await, ["kept"]);
}

pub async fn deleting_a_queue_removes_its_messages_and_dedup_ids_and_frees_its_name<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = setup(open, &[config("q"), config("other")]).await;
    let mut deduplicated = msg("first");
    deduplicated.dedup_id = Some("d".to_owned());
    store
        .send("q", vec![deduplicated.clone(), msg("b"), msg("c")])
        .await
        .unwrap();
    // One of them leased: deleted all the same.
    assert_eq!(store.receive("q", 1, None).await.unwrap().len(), 1);
    store.send("other", vec![msg("kept")]).await.unwrap();

    assert_eq!(store.delete_queue("q").await.unwrap(), 3);
    assert_eq!(store.queues().await.unwrap(), vec![config("other")]);
    let missing = StoreError::QueueNotFound("q".into());
    assert_eq!(store.stats("q").await.unwrap_err(), missing);
    assert_eq!(
        store.send("q", vec![msg("late")]).await.unwrap_err(),
        missing
    );
    assert_eq!(store.delete_queue("q").await.unwrap_err(), missing);
    assert_eq!(
        store.delete_queue("never").await.unwrap_err(),
        StoreError::QueueNotFound("never".into())
    );
    assert_eq!(bodies(&store, "other", 10).await, ["kept"]);

    // Declared again, it starts empty and remembers no dedup id.
    store.declare_queues(&[config("q")]).await.unwrap();
    assert_eq!(store.stats("q").await.unwrap(), QueueStats::default());
    assert!(store.peek("q", 10, None).await.unwrap().is_empty());
    let again = store.send("q", vec![deduplicated]).await.unwrap();
    assert!(!again[0].deduplicated);
    assert_eq!(bodies(&store, "q", 10).await, ["first"]);
}

pub async fn a_dead_letter_queue_is_not_deleted_while_a_queue_names_it<
    S: QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let source = QueueConfig {
        max_receive_count: Some(1),
        dead_letter_queue: Some("dlq".to_owned()),
        ..config("src")
    };
    let (store, _) = setup(open, &[source.clone(), config("dlq")]).await;
    store.send("src", vec![msg("poison")]).await.unwrap();
    let leased = store.receive("src", 1, None).await.unwrap();
    store
        .nack("src", &leased[0].receipt_handle, NackOptions::default())
        .await
        .unwrap();
    // The second receive moves it to the dead-letter queue.
    assert!(store.receive("src", 1, None).await.unwrap().is_empty());
    assert_eq!(store.peek("dlq", 10, None).await.unwrap().len(), 1);

    let refused = store.delete_queue("dlq").await.unwrap_err();
    assert_eq!(
        refused,
        StoreError::DeadLetterQueueInUse {
            queue: "dlq".to_owned(),
            source_queue: "src".to_owned()
        }
    );
    assert!(
        refused.to_string().contains("delete `src` first"),
        "{refused}"
    );
    // Nothing changed.
    assert_eq!(store.queues().await.unwrap().len(), 2);
    assert_eq!(store.peek("dlq", 10, None).await.unwrap().len(), 1);

    // Once no queue names it (here: its source declared without it), it goes.
    store
        .declare_queues(&[QueueConfig {
            max_receive_count: None,
            dead_letter_queue: None,
            ..source
        }])
        .await
        .unwrap();
    assert_eq!(store.delete_queue("dlq").await.unwrap(), 1);
    assert_eq!(store.queues().await.unwrap(), vec![config("src")]);
    assert_eq!(store.delete_queue("src").await.unwrap(), 0);
    assert!(store.queues().await.unwrap().is_empty());
}
