//! Invocation history cases: records round-trip with their logs, listing
//! filters and pages newest first, and expiry honours both the retention
//! (by the store's clock) and the record cap.

use crate::ManualClock;
use crate::history::{HistoryStore, InvocationFilter, InvocationRecord, LogLine};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;

fn record(id: &str, function: &str, outcome: &str) -> InvocationRecord {
    InvocationRecord {
        id: id.to_owned(),
        function: function.to_owned(),
        trigger: "queue".to_owned(),
        source: "orders".to_owned(),
        started_at: START_MS,
        duration_ms: 12,
        outcome: outcome.to_owned(),
        error: (outcome != "success").then(|| "the handler returned an error: no".to_owned()),
        attempt: 2,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        logs: vec![
            LogLine {
                stream: "stdout".to_owned(),
                text: format!("hello from {id}"),
            },
            LogLine {
                stream: "log:warn".to_owned(),
                text: "a \"quoted\"\nline".to_owned(),
            },
        ],
        logs_truncated: outcome == "error",
        node: Some("node-a".to_owned()),
    }
}

fn filter(limit: u32) -> InvocationFilter {
    InvocationFilter {
        limit,
        ..InvocationFilter::default()
    }
}

fn ids(records: &[InvocationRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

pub async fn invocation_records_round_trip_with_their_logs<
    S: HistoryStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let (a, b) = (record("01a", "f", "success"), record("01b", "f", "error"));
    store
        .record_invocations(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    assert_eq!(store.get_invocation("01b").await.unwrap(), Some(b.clone()));
    assert_eq!(store.get_invocation("ghost").await.unwrap(), None);
    let listed = store
        .list_invocations(InvocationFilter {
            with_logs: true,
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(listed, [b.clone(), a]);
    let without_logs = store.list_invocations(filter(10)).await.unwrap();
    assert!(without_logs.iter().all(|r| r.logs.is_empty()));
    assert_eq!(without_logs[0].error, b.error);
}

pub async fn invocations_are_listed_newest_first_by_filter_and_page<
    S: HistoryStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store
        .record_invocations(vec![
            record("01", "f", "success"),
            record("02", "g", "error"),
            record("03", "f", "timeout"),
            record("04", "f", "success"),
        ])
        .await
        .unwrap();
    let all = store.list_invocations(filter(10)).await.unwrap();
    assert_eq!(ids(&all), ["04", "03", "02", "01"]);
    let f = InvocationFilter {
        function: Some("f".into()),
        ..filter(10)
    };
    assert_eq!(
        ids(&store.list_invocations(f.clone()).await.unwrap()),
        ["04", "03", "01"]
    );
    let page = store
        .list_invocations(InvocationFilter {
            limit: 2,
            ..f.clone()
        })
        .await
        .unwrap();
    assert_eq!(ids(&page), ["04", "03"]);
    let next = InvocationFilter {
        before: Some("03".into()),
        ..f
    };
    assert_eq!(ids(&store.list_invocations(next).await.unwrap()), ["01"]);
    let failed = InvocationFilter {
        outcomes: vec!["error".into()],
        ..filter(10)
    };
    assert_eq!(ids(&store.list_invocations(failed).await.unwrap()), ["02"]);
    let failed_or_late = InvocationFilter {
        outcomes: vec!["error".into(), "timeout".into()],
        ..filter(10)
    };
    assert_eq!(
        ids(&store.list_invocations(failed_or_late).await.unwrap()),
        ["03", "02"]
    );
}

pub async fn expiry_removes_records_past_retention_then_past_the_cap<
    S: HistoryStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store
        .record_invocations(vec![record("01", "f", "success")])
        .await
        .unwrap();
    clock.advance_ms(60_000);
    store
        .record_invocations(vec![
            record("02", "f", "success"),
            record("03", "f", "success"),
            record("04", "f", "success"),
        ])
        .await
        .unwrap();
    clock.advance_ms(30_000);
    // "01" was recorded 90 s ago, the rest 30 s ago.
    assert_eq!(store.expire_invocations(60_000, 100).await.unwrap(), 1);
    assert_eq!(
        ids(&store.list_invocations(filter(10)).await.unwrap()),
        ["04", "03", "02"]
    );
    // Within the retention, the cap keeps the newest.
    assert_eq!(store.expire_invocations(60_000, 2).await.unwrap(), 1);
    assert_eq!(
        ids(&store.list_invocations(filter(10)).await.unwrap()),
        ["04", "03"]
    );
    assert_eq!(store.expire_invocations(60_000, 2).await.unwrap(), 0);
}
