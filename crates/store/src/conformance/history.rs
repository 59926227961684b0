//! Invocation history cases: records round-trip with their logs and spans,
//! listing filters (by function, outcome and trace) and pages newest first, and expiry honours both the retention
//! (by the store's clock) and the record cap; usage adds up exactly what
//! the metered records say, once per record, and outlives them.

use crate::ManualClock;
use crate::history::{
    HOUR_MS, HistoryStore, InvocationFilter, InvocationRecord, LogLine, SpanRecord, UsageFilter,
    UsageRow,
};
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
        memory_mb: 128,
        billed_ms: 13,
        outbound_bytes: 100,
        spans: vec![
            SpanRecord {
                span_id: "00f067aa0ba902b7".to_owned(),
                parent_id: Some("b7ad6b7169203331".to_owned()),
                name: format!("invoke {function}"),
                kind: "internal".to_owned(),
                start_us: START_MS * 1000 + 5,
                duration_us: 12_345,
                attributes: vec![("faas.invocation_id".to_owned(), id.to_owned())],
                error: (outcome != "success").then(|| "it \"failed\"\nbadly".to_owned()),
            },
            SpanRecord {
                span_id: "53995c3f42cd8ad8".to_owned(),
                parent_id: Some("00f067aa0ba902b7".to_owned()),
                name: "send orders".to_owned(),
                kind: "producer".to_owned(),
                start_us: START_MS * 1000 + 900,
                duration_us: 400,
                attributes: Vec::new(),
                error: None,
            },
        ],
        spans_dropped: if outcome == "error" { 3 } else { 0 },
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
            with_spans: true,
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(listed, [b.clone(), a]);
    let without_logs = store.list_invocations(filter(10)).await.unwrap();
    assert!(
        without_logs
            .iter()
            .all(|r| r.logs.is_empty() && r.spans.is_empty())
    );
    assert_eq!(without_logs[0].error, b.error);
    let spans_only = store
        .list_invocations(InvocationFilter {
            with_spans: true,
            ..filter(10)
        })
        .await
        .unwrap();
    assert!(spans_only.iter().all(|r| r.logs.is_empty()));
    assert_eq!(spans_only[0].spans, b.spans);
    let logs_only = store
        .list_invocations(InvocationFilter {
            with_logs: true,
            ..filter(10)
        })
        .await
        .unwrap();
    assert!(logs_only.iter().all(|r| r.spans.is_empty()));
    assert_eq!(logs_only[0].logs, b.logs);
    // A record without spans (as every one before spans were kept) reads
    // back without them.
    let bare = InvocationRecord {
        spans: Vec::new(),
        spans_dropped: 0,
        ..record("01c", "f", "success")
    };
    store.record_invocations(vec![bare.clone()]).await.unwrap();
    assert_eq!(store.get_invocation("01c").await.unwrap(), Some(bare));
}

pub async fn invocations_are_listed_newest_first_by_filter_and_page<
    S: HistoryStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let other_trace = InvocationRecord {
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".to_owned()),
        ..record("02", "g", "error")
    };
    let untraced = InvocationRecord {
        trace_id: None,
        ..record("05", "g", "success")
    };
    store
        .record_invocations(vec![
            record("01", "f", "success"),
            other_trace,
            record("03", "f", "timeout"),
            record("04", "f", "success"),
            untraced,
        ])
        .await
        .unwrap();
    let trace = |id: &str| InvocationFilter {
        trace_id: Some(id.to_owned()),
        ..filter(10)
    };
    assert_eq!(
        ids(&store
            .list_invocations(trace("4bf92f3577b34da6a3ce929d0e0e4736"))
            .await
            .unwrap()),
        ["04", "03", "01"]
    );
    assert_eq!(
        ids(&store
            .list_invocations(trace("0af7651916cd43dd8448eb211c80319c"))
            .await
            .unwrap()),
        ["02"]
    );
    let all = store.list_invocations(filter(10)).await.unwrap();
    assert_eq!(ids(&all), ["05", "04", "03", "02", "01"]);
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

pub async fn usage_adds_up_each_metered_record_once_and_outlives_them<
    S: HistoryStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let at = |id: &str, function: &str, outcome: &str, started_at: u64, billed_ms: u64| {
        InvocationRecord {
            started_at,
            billed_ms,
            memory_mb: if function == "f" { 256 } else { 128 },
            outbound_bytes: billed_ms * 10,
            ..record(id, function, outcome)
        }
    };
    let hour = START_MS - START_MS % HOUR_MS;
    let batch = vec![
        at("01", "f", "success", hour + 10, 1),
        at("02", "f", "error", hour + 20, 7),
        at("03", "g", "timeout", hour + 30, 100),
        // A throttled invocation never ran: it is recorded, not metered.
        at("04", "f", "throttled", hour + 40, 0),
        at("05", "f", "success", hour + HOUR_MS + 5, 2),
    ];
    // An id repeated within a batch: the last copy is stored and metered,
    // once.
    let mut with_repeat = batch.clone();
    with_repeat.insert(0, at("05", "f", "success", hour + HOUR_MS + 5, 40));
    store.record_invocations(with_repeat).await.unwrap();
    // The same records stored again (a batch retried after an outcome
    // unknown) add nothing.
    store.record_invocations(batch[..2].to_vec()).await.unwrap();
    let all = UsageFilter {
        from: 0,
        to: u64::MAX / 2,
        function: None,
    };
    let row = |function: &str, hour, invocations, billed_ms, mb: u64| UsageRow {
        function: function.to_owned(),
        hour,
        invocations,
        billed_ms,
        mb_ms: mb * billed_ms,
        outbound_bytes: billed_ms * 10,
    };
    let expected = vec![
        row("f", hour, 2, 8, 256),
        row("g", hour, 1, 100, 128),
        row("f", hour + HOUR_MS, 1, 2, 256),
    ];
    assert_eq!(store.usage(all.clone()).await.unwrap(), expected);
    // By function, and by the hours asked for.
    assert_eq!(
        store
            .usage(UsageFilter {
                function: Some("g".to_owned()),
                ..all.clone()
            })
            .await
            .unwrap(),
        expected[1..2]
    );
    assert_eq!(
        store
            .usage(UsageFilter {
                from: hour + 1,
                ..all.clone()
            })
            .await
            .unwrap(),
        expected[2..]
    );
    // The records expire; the usage they added stays.
    clock.advance_ms(10 * HOUR_MS);
    assert_eq!(store.expire_invocations(1, 100).await.unwrap(), 5);
    assert_eq!(store.usage(all).await.unwrap(), expected);
}
