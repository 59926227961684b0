//! Schedule store cases. Each takes a way to open the store under test on a
//! manual clock (opening twice must reach the same data).

use crate::queue::{QueueConfig, QueueStore, SendMessage};
use crate::schedule::{ScheduleState, ScheduleStore};
use crate::{ManualClock, StoreError};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;
const QUEUE: &str = "_schedule.nightly";

fn config() -> QueueConfig {
    QueueConfig {
        name: QUEUE.to_owned(),
        visibility_timeout_ms: 30_000,
        retention_ms: 24 * 3600 * 1000,
        delay_ms: 0,
        max_message_bytes: 256 * 1024,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

fn tick(body: &str) -> SendMessage {
    SendMessage {
        body: body.as_bytes().to_vec(),
        ..SendMessage::default()
    }
}

async fn setup<S, F>(open: impl Fn(ManualClock) -> F) -> (S, ManualClock)
where
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
{
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.declare_queues(&[config()]).await.unwrap();
    (store, clock)
}

async fn bodies(store: &impl QueueStore) -> Vec<String> {
    store
        .peek(QUEUE, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect()
}

pub async fn a_new_schedule_starts_at_its_given_time_and_keeps_its_mark<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(open).await;
    assert_eq!(store.schedule_state("nightly").await.unwrap(), None);
    let first = store.register_schedule("nightly", START_MS).await.unwrap();
    let expected = ScheduleState {
        name: "nightly".to_owned(),
        mark_ms: START_MS,
        last_fired_ms: None,
    };
    assert_eq!(first, expected);
    clock.advance_ms(60_000);
    assert_eq!(
        store
            .register_schedule("nightly", START_MS + 60_000)
            .await
            .unwrap(),
        expected
    );
    store.register_schedule("hourly", START_MS).await.unwrap();
    let names: Vec<String> = store
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
}

pub async fn a_tick_fires_once_with_its_message<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _clock) = setup(open).await;
    store.register_schedule("nightly", START_MS).await.unwrap();
    let tick_ms = START_MS + 60_000;
    assert!(
        store
            .fire("nightly", tick_ms, QUEUE, tick("t1"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .fire("nightly", tick_ms, QUEUE, tick("t1 again"), None)
            .await
            .unwrap()
    );
    assert_eq!(bodies(&store).await, ["t1"]);
    let state = store.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!(
        (state.mark_ms, state.last_fired_ms),
        (tick_ms, Some(tick_ms))
    );
}

pub async fn a_tick_at_or_before_the_mark_does_not_fire<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _clock) = setup(open).await;
    store.register_schedule("nightly", START_MS).await.unwrap();
    assert!(
        !store
            .fire("nightly", START_MS, QUEUE, tick("at the mark"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .fire("nightly", START_MS - 1, QUEUE, tick("before"), None)
            .await
            .unwrap()
    );
    assert!(
        store
            .fire("nightly", START_MS + 2, QUEUE, tick("later"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .fire("nightly", START_MS + 1, QUEUE, tick("between"), None)
            .await
            .unwrap()
    );
    assert_eq!(bodies(&store).await, ["later"]);
}

pub async fn a_failed_send_leaves_the_mark_where_it_was<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _clock) = setup(open).await;
    store.register_schedule("nightly", START_MS).await.unwrap();
    let err = store
        .fire(
            "nightly",
            START_MS + 1,
            "_schedule.ghost",
            tick("lost?"),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::QueueNotFound("_schedule.ghost".to_owned()));
    let state = store.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!((state.mark_ms, state.last_fired_ms), (START_MS, None));
    assert!(
        store
            .fire("nightly", START_MS + 1, QUEUE, tick("retried"), None)
            .await
            .unwrap()
    );
    assert_eq!(bodies(&store).await, ["retried"]);
}

pub async fn skipping_moves_the_mark_without_sending<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _clock) = setup(open).await;
    store.register_schedule("nightly", START_MS).await.unwrap();
    assert!(
        store
            .skip_ticks("nightly", START_MS + 500, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .skip_ticks("nightly", START_MS + 100, None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .fire("nightly", START_MS + 400, QUEUE, tick("skipped"), None)
            .await
            .unwrap()
    );
    let state = store.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!((state.mark_ms, state.last_fired_ms), (START_MS + 500, None));
    assert!(bodies(&store).await.is_empty());
}

pub async fn marks_survive_reopening_the_store<
    S: ScheduleStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = setup(&open).await;
    store.register_schedule("nightly", START_MS).await.unwrap();
    let tick_ms = START_MS + 60_000;
    store
        .fire("nightly", tick_ms, QUEUE, tick("t1"), None)
        .await
        .unwrap();
    drop(store);
    let reopened = open(clock).await;
    let state = reopened.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!(
        (state.mark_ms, state.last_fired_ms),
        (tick_ms, Some(tick_ms))
    );
    assert!(
        !reopened
            .fire("nightly", tick_ms, QUEUE, tick("t1 again"), None)
            .await
            .unwrap()
    );
    assert_eq!(bodies(&reopened).await, ["t1"]);
}
