//! Lease cases: a lease is held by one owner at a time until it lapses by
//! the store's clock; the fence grows when it changes hands and not when
//! its owner renews; renewal reports what was lost; a release frees it at
//! once; a node's new incarnation (`NODE/INCARNATION`) takes its live
//! leases at once with new fences; a checkpoint written under a stale fence
//! is refused and moves nothing; leases survive reopening the store. Node reports: the last
//! one of each node is kept, stamped by the store's clock, and nodes silent
//! past a bound are forgotten.

use crate::lease::{Fence, LeaseStore};
use crate::table::TableStore;
use crate::{ManualClock, StoreError};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;
const TTL_MS: u64 = 15_000;

pub async fn a_lease_has_one_owner_until_it_lapses_by_the_store_clock<
    S: LeaseStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let first = store
        .acquire_lease("stream:orders:0/2", "node-a", TTL_MS)
        .await
        .unwrap()
        .expect("a free lease is taken");
    assert_eq!(first.owner, "node-a");
    assert_eq!(first.expires_at, START_MS + TTL_MS);
    assert_eq!(
        store
            .acquire_lease("stream:orders:0/2", "node-b", TTL_MS)
            .await
            .unwrap(),
        None,
        "a live lease is not taken by another owner"
    );
    clock.advance_ms(TTL_MS - 1);
    assert_eq!(
        store
            .acquire_lease("stream:orders:0/2", "node-b", TTL_MS)
            .await
            .unwrap(),
        None,
        "a lease lives until its expiry"
    );
    clock.advance_ms(1);
    let taken = store
        .acquire_lease("stream:orders:0/2", "node-b", TTL_MS)
        .await
        .unwrap()
        .expect("a lapsed lease is taken");
    assert_eq!(taken.owner, "node-b");
    assert!(
        taken.fence > first.fence,
        "the fence grows when it changes hands"
    );
    let listed = store.leases("stream:").await.unwrap();
    assert_eq!(listed, vec![taken]);
}

pub async fn renewing_keeps_the_fence_and_reports_lost_leases<
    S: LeaseStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let a = store
        .acquire_lease("a", "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    let b = store
        .acquire_lease("b", "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    clock.advance_ms(TTL_MS / 2);
    let again = store
        .acquire_lease("a", "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.fence, a.fence,
        "its owner taking it again keeps the fence"
    );
    let names = vec!["a".to_owned(), "b".to_owned(), "never-taken".to_owned()];
    let renewed = store.renew_leases("node-a", &names, TTL_MS).await.unwrap();
    assert_eq!(
        renewed
            .iter()
            .map(|l| (l.name.as_str(), l.fence, l.expires_at))
            .collect::<Vec<_>>(),
        vec![
            ("a", a.fence, START_MS + TTL_MS / 2 + TTL_MS),
            ("b", b.fence, START_MS + TTL_MS / 2 + TTL_MS)
        ]
    );
    // `b` lapses and another node takes it: renewing no longer returns it.
    clock.advance_ms(TTL_MS);
    assert!(
        store
            .renew_leases("node-a", &names, TTL_MS)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .acquire_lease("b", "node-b", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    let renewed = store.renew_leases("node-a", &names, TTL_MS).await.unwrap();
    assert!(renewed.is_empty(), "lapsed leases are lost: {renewed:?}");
    // Taking back a lease that lapsed grows the fence, even for the owner
    // that had it.
    let back = store
        .acquire_lease("a", "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(back.fence > a.fence);
}

pub async fn a_released_lease_is_free_at_once_and_only_its_holder_releases_it<
    S: LeaseStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let held = store
        .acquire_lease("sweep", "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    store
        .release_lease("sweep", "node-b", held.fence)
        .await
        .unwrap();
    store
        .release_lease("sweep", "node-a", held.fence + 1)
        .await
        .unwrap();
    assert_eq!(
        store
            .acquire_lease("sweep", "node-b", TTL_MS)
            .await
            .unwrap(),
        None,
        "a release by another owner or at another fence does nothing"
    );
    store
        .release_lease("sweep", "node-a", held.fence)
        .await
        .unwrap();
    assert!(store.leases("").await.unwrap().is_empty());
    let next = store
        .acquire_lease("sweep", "node-b", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(next.fence > held.fence);
}

pub async fn a_checkpoint_under_a_stale_fence_is_refused<
    S: LeaseStore + TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let lane = "stream:orders:f:0/1";
    let old = store
        .acquire_lease(lane, "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    store
        .set_checkpoint(lane, 5, Some(&old.fence()))
        .await
        .unwrap();
    assert_eq!(store.checkpoint(lane).await.unwrap(), Some(5));
    clock.advance_ms(TTL_MS);
    let new = store
        .acquire_lease(lane, "node-b", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.set_checkpoint(lane, 9, Some(&old.fence())).await,
        Err(StoreError::Fenced {
            lease: lane.to_owned(),
            token: old.fence
        })
    );
    assert_eq!(
        store.checkpoint(lane).await.unwrap(),
        Some(5),
        "nothing moved"
    );
    store
        .set_checkpoint(lane, 7, Some(&new.fence()))
        .await
        .unwrap();
    assert_eq!(store.checkpoint(lane).await.unwrap(), Some(7));
    let unknown = Fence {
        lease: "never-taken".to_owned(),
        token: 1,
    };
    assert!(matches!(
        store.set_checkpoint(lane, 8, Some(&unknown)).await,
        Err(StoreError::Fenced { .. })
    ));
}

pub async fn leases_survive_reopening_the_store<S: LeaseStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let held = {
        let store = open(clock.clone()).await;
        store
            .acquire_lease("sweep", "node-a", TTL_MS)
            .await
            .unwrap()
            .unwrap()
    };
    let store = open(clock).await;
    assert_eq!(store.leases("").await.unwrap(), vec![held]);
    assert_eq!(
        store
            .acquire_lease("sweep", "node-b", TTL_MS)
            .await
            .unwrap(),
        None
    );
}

pub async fn a_schedule_tick_under_a_stale_fence_is_refused<
    S: LeaseStore + crate::ScheduleStore + crate::QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store
        .declare_queues(&[crate::QueueConfig {
            name: "_schedule.nightly".to_owned(),
            visibility_timeout_ms: 30_000,
            retention_ms: 86_400_000,
            delay_ms: 0,
            max_message_bytes: 1024,
            dedup_window_ms: 0,
            max_receive_count: None,
            dead_letter_queue: None,
        }])
        .await
        .unwrap();
    store.register_schedule("nightly", START_MS).await.unwrap();
    let unit = "schedule:nightly";
    let old = store
        .acquire_lease(unit, "node-a", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    let tick = |n: &str| crate::SendMessage {
        body: n.as_bytes().to_vec(),
        ..crate::SendMessage::default()
    };
    assert!(
        store
            .fire(
                "nightly",
                START_MS + 1,
                "_schedule.nightly",
                tick("1"),
                Some(&old.fence())
            )
            .await
            .unwrap()
    );
    clock.advance_ms(TTL_MS);
    let new = store
        .acquire_lease(unit, "node-b", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    let stale = store
        .fire(
            "nightly",
            START_MS + 2,
            "_schedule.nightly",
            tick("2"),
            Some(&old.fence()),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    let skipped = store
        .skip_ticks("nightly", START_MS + 3, Some(&old.fence()))
        .await;
    assert!(
        matches!(skipped, Err(StoreError::Fenced { .. })),
        "{skipped:?}"
    );
    let state = store.schedule_state("nightly").await.unwrap().unwrap();
    assert_eq!(state.mark_ms, START_MS + 1, "the stale owner moved nothing");
    assert!(
        store
            .fire(
                "nightly",
                START_MS + 2,
                "_schedule.nightly",
                tick("2"),
                Some(&new.fence())
            )
            .await
            .unwrap()
    );
    let bodies: Vec<Vec<u8>> = store
        .peek("_schedule.nightly", 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, [b"1".to_vec(), b"2".to_vec()]);
}

pub async fn the_store_tells_its_clock<S: crate::Store, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    assert_eq!(store.now_ms().await.unwrap(), START_MS);
    clock.advance_ms(1_234);
    assert_eq!(store.now_ms().await.unwrap(), START_MS + 1_234);
}

fn report(node: &str, in_flight: u64) -> crate::NodeReport {
    crate::NodeReport {
        node: node.to_owned(),
        version: "0.1.0".to_owned(),
        started_at: START_MS - 5,
        reported_at: 0,
        in_flight,
    }
}

pub async fn a_nodes_last_report_is_kept_stamped_by_the_store_clock<
    S: crate::NodeStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.report_node(&report("node-b", 3)).await.unwrap();
    store.report_node(&report("node-a", 1)).await.unwrap();
    clock.advance_ms(4_000);
    store.report_node(&report("node-b", 0)).await.unwrap();
    let reports = store.node_reports().await.unwrap();
    let seen: Vec<(&str, u64, u64)> = reports
        .iter()
        .map(|r| (r.node.as_str(), r.in_flight, r.reported_at))
        .collect();
    assert_eq!(
        seen,
        [("node-a", 1, START_MS), ("node-b", 0, START_MS + 4_000)],
        "one report per node, the last one, by node id"
    );
    assert_eq!(reports[0].started_at, START_MS - 5);
    assert_eq!(reports[0].version, "0.1.0");
}

pub async fn nodes_silent_past_the_bound_are_forgotten<
    S: crate::NodeStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.report_node(&report("gone", 0)).await.unwrap();
    clock.advance_ms(10_000);
    store.report_node(&report("here", 0)).await.unwrap();
    assert_eq!(store.forget_nodes(10_001).await.unwrap(), 0);
    assert_eq!(
        store.forget_nodes(10_000).await.unwrap(),
        0,
        "exactly at the bound is kept"
    );
    assert_eq!(store.forget_nodes(9_999).await.unwrap(), 1);
    let left: Vec<String> = store
        .node_reports()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.node)
        .collect();
    assert_eq!(left, ["here"]);
}

pub async fn a_restarted_incarnation_of_a_node_takes_its_leases_at_once_with_new_fences<
    S: LeaseStore + TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let unit = "stream:orders:f:0/2";
    let before = store
        .acquire_lease(unit, "node-a/1111", TTL_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .acquire_lease(unit, "node-b/2222", TTL_MS)
            .await
            .unwrap(),
        None,
        "another node waits for the lease to lapse"
    );
    // node-a restarted: its new process takes the live lease at once.
    let after = store
        .acquire_lease(unit, "node-a/3333", TTL_MS)
        .await
        .unwrap()
        .expect("the node's new incarnation takes its lease");
    assert_eq!(after.owner, "node-a/3333");
    assert!(after.fence > before.fence, "the fence grows");
    assert_eq!(
        store
            .renew_leases("node-a/1111", &[unit.to_owned()], TTL_MS)
            .await
            .unwrap(),
        [],
        "the earlier process can no longer renew it"
    );
    let stale = store.set_checkpoint(unit, 1, Some(&before.fence())).await;
    assert!(matches!(stale, Err(StoreError::Fenced { .. })), "{stale:?}");
    store
        .set_checkpoint(unit, 1, Some(&after.fence()))
        .await
        .unwrap();
    assert_eq!(crate::lease::owner_node("node-a/3333"), "node-a");
    assert_eq!(crate::lease::owner_node("node-a"), "node-a");
}
