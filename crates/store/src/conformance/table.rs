//! Table and change-stream cases: versions and conditional writes, queries
//! and scans with pages, exactly one change record per write in write order
//! with the images the stream view keeps, lanes, checkpoints and stream
//! retention by the store's clock.

use crate::table::{
    ChangeKind, ItemKey, Lane, PutCondition, SortRange, StreamView, TableConfig, TableStore,
    key_lane,
};
use crate::{ManualClock, StoreError};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn orders(stream: Option<StreamView>) -> TableConfig {
    TableConfig {
        name: "orders".to_owned(),
        partition_key: "customer".to_owned(),
        sort_key: Some("order".to_owned()),
        stream,
        stream_retention_ms: DAY_MS,
        max_item_bytes: 1024,
    }
}

fn key(partition: &str, sort: &str) -> ItemKey {
    ItemKey {
        partition: partition.to_owned(),
        sort: Some(sort.to_owned()),
    }
}

async fn put<S: TableStore>(store: &S, k: ItemKey, doc: &str) -> u64 {
    store
        .put_item(
            "orders",
            k,
            doc.as_bytes().to_vec(),
            PutCondition::Always,
            None,
        )
        .await
        .unwrap()
        .unwrap()
}

async fn opened<S: TableStore, F: Future<Output = S>>(
    open: &impl Fn(ManualClock) -> F,
    stream: Option<StreamView>,
) -> (S, ManualClock) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.declare_tables(&[orders(stream)]).await.unwrap();
    (store, clock)
}

pub async fn items_round_trip_and_each_write_raises_the_version<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = opened(&open, None).await;
    assert_eq!(put(&store, key("ann", "1"), r#"{"n":1}"#).await, 1);
    clock.advance_ms(5);
    assert_eq!(put(&store, key("ann", "1"), r#"{"n":2}"#).await, 2);
    let item = store
        .get_item("orders", &key("ann", "1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.document, br#"{"n":2}"#);
    assert_eq!((item.version, item.updated_at), (2, START_MS + 5));
    assert_eq!(
        store.get_item("orders", &key("ann", "2")).await.unwrap(),
        None
    );
    assert_eq!(store.tables().await.unwrap(), vec![orders(None)]);
}

pub async fn conditional_puts_and_deletes_fail_without_writing<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, Some(StreamView::KeysOnly)).await;
    let cond = |c| {
        let store = &store;
        async move {
            store
                .put_item("orders", key("ann", "1"), b"{}".to_vec(), c, None)
                .await
                .unwrap()
        }
    };
    assert_eq!(cond(PutCondition::IfAbsent).await, Ok(1));
    let failed = cond(PutCondition::IfAbsent).await.unwrap_err();
    assert_eq!(failed.current_version, Some(1));
    assert_eq!(cond(PutCondition::IfVersion(1)).await, Ok(2));
    let stale = cond(PutCondition::IfVersion(1)).await.unwrap_err();
    assert_eq!(stale.current_version, Some(2));
    let wrong = store
        .delete_item("orders", &key("ann", "1"), Some(1), None)
        .await
        .unwrap();
    assert_eq!(wrong.unwrap_err().current_version, Some(2));
    let deleted = store
        .delete_item("orders", &key("ann", "1"), Some(2), None)
        .await
        .unwrap();
    assert_eq!(deleted, Ok(Some(2)));
    let absent = store
        .delete_item("orders", &key("ann", "1"), None, None)
        .await
        .unwrap();
    assert_eq!(absent, Ok(None));
    let missing = cond(PutCondition::IfVersion(2)).await.unwrap_err();
    assert_eq!(missing.current_version, None);
    // Only the three writes that happened are on the stream.
    let records = store.read_stream("orders", 0, 100, None).await.unwrap();
    let kinds: Vec<ChangeKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [ChangeKind::Insert, ChangeKind::Modify, ChangeKind::Remove]
    );
}

pub async fn queries_select_one_partition_by_sort_range_in_pages<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, None).await;
    for sort in ["2026-01", "2026-02", "2026-03", "2027-01"] {
        put(&store, key("ann", sort), "{}").await;
    }
    put(&store, key("bob", "2026-01"), "{}").await;
    let sorts = |page: &crate::table::ItemPage| -> Vec<String> {
        page.items
            .iter()
            .map(|i| i.key.sort.clone().unwrap())
            .collect()
    };
    let prefix = SortRange::Prefix("2026-".to_owned());
    let first = store
        .query("orders", "ann", &prefix, None, 2)
        .await
        .unwrap();
    assert_eq!(sorts(&first), ["2026-01", "2026-02"]);
    let next = first.next.clone().expect("a second page");
    let second = store
        .query("orders", "ann", &prefix, Some(&next), 2)
        .await
        .unwrap();
    assert_eq!(sorts(&second), ["2026-03"]);
    assert_eq!(second.next, None);
    let between = SortRange::Between {
        from: Some("2026-02".to_owned()),
        to: Some("2027-01".to_owned()),
    };
    let range = store
        .query("orders", "ann", &between, None, 10)
        .await
        .unwrap();
    assert_eq!(sorts(&range), ["2026-02", "2026-03", "2027-01"]);
    let all = store
        .query("orders", "bob", &SortRange::All, None, 10)
        .await
        .unwrap();
    assert_eq!(sorts(&all), ["2026-01"]);
}

pub async fn scans_visit_every_item_once_in_key_order<S: TableStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, None).await;
    let keys = [key("a", "2"), key("b", "1"), key("a", "1"), key("c", "9")];
    for k in &keys {
        put(&store, k.clone(), "{}").await;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan("orders", after.as_ref(), 3).await.unwrap();
        seen.extend(page.items.iter().map(|i| i.key.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(seen, expected);
}

pub async fn every_write_has_one_change_record_in_write_order_with_its_images<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, Some(StreamView::NewAndOldImages)).await;
    put(&store, key("ann", "1"), "1").await;
    put(&store, key("bob", "1"), "b").await;
    put(&store, key("ann", "1"), "2").await;
    store
        .put_item(
            "orders",
            key("ann", "1"),
            b"3".to_vec(),
            PutCondition::Always,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()),
        )
        .await
        .unwrap()
        .unwrap();
    store
        .delete_item("orders", &key("ann", "1"), None, None)
        .await
        .unwrap()
        .unwrap();
    let records = store.read_stream("orders", 0, 100, None).await.unwrap();
    assert_eq!(records.len(), 5);
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    let ann: Vec<_> = records
        .iter()
        .filter(|r| r.key.partition == "ann")
        .collect();
    type Images<'a> = (ChangeKind, Option<&'a [u8]>, Option<&'a [u8]>, u64);
    let images: Vec<Images<'_>> = ann
        .iter()
        .map(|r| {
            (
                r.kind,
                r.old_image.as_deref(),
                r.new_image.as_deref(),
                r.version,
            )
        })
        .collect();
    assert_eq!(
        images,
        [
            (ChangeKind::Insert, None, Some(b"1".as_slice()), 1),
            (
                ChangeKind::Modify,
                Some(b"1".as_slice()),
                Some(b"2".as_slice()),
                2
            ),
            (
                ChangeKind::Modify,
                Some(b"2".as_slice()),
                Some(b"3".as_slice()),
                3
            ),
            (ChangeKind::Remove, Some(b"3".as_slice()), None, 3),
        ]
    );
    assert_eq!(
        ann[2].traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(store.latest_seq("orders").await.unwrap(), records[4].seq);
    let tail = store
        .read_stream("orders", records[2].seq, 100, None)
        .await
        .unwrap();
    assert_eq!(tail.len(), 2);
}

pub async fn stream_views_keep_only_their_images_and_no_stream_keeps_nothing<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    for (view, new, old) in [
        (StreamView::KeysOnly, false, false),
        (StreamView::NewImage, true, false),
        (StreamView::OldImage, false, true),
    ] {
        let (store, _) = opened(&open, Some(view)).await;
        put(&store, key("ann", "1"), "1").await;
        put(&store, key("ann", "1"), "2").await;
        let records = store.read_stream("orders", 0, 10, None).await.unwrap();
        let modify = &records[records.len() - 1];
        assert_eq!(modify.new_image.is_some(), new, "{view:?}");
        assert_eq!(modify.old_image.is_some(), old, "{view:?}");
        store.declare_tables(&[orders(None)]).await.unwrap();
        let before = store.latest_seq("orders").await.unwrap();
        put(&store, key("ann", "1"), "3").await;
        assert_eq!(store.latest_seq("orders").await.unwrap(), before);
    }
}

pub async fn lanes_split_a_stream_by_partition_key<S: TableStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, Some(StreamView::KeysOnly)).await;
    let customers: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    for c in &customers {
        put(&store, key(c, "1"), "{}").await;
    }
    let mut total = 0;
    for index in 0..3 {
        let lane = Lane { index, lanes: 3 };
        let records = store
            .read_stream("orders", 0, 100, Some(lane))
            .await
            .unwrap();
        assert!(
            records
                .iter()
                .all(|r| key_lane(&r.key.partition, 3) == index)
        );
        total += records.len();
    }
    assert_eq!(total, customers.len());
}

pub async fn a_start_time_finds_the_first_record_at_or_after_it<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = opened(&open, Some(StreamView::KeysOnly)).await;
    put(&store, key("ann", "1"), "{}").await;
    clock.advance_ms(1000);
    put(&store, key("ann", "2"), "{}").await;
    let records = store.read_stream("orders", 0, 10, None).await.unwrap();
    let before = store
        .seq_before_time("orders", START_MS + 500)
        .await
        .unwrap();
    let from = store.read_stream("orders", before, 10, None).await.unwrap();
    assert_eq!(from[0].seq, records[1].seq);
    let future = store
        .seq_before_time("orders", START_MS + 10_000)
        .await
        .unwrap();
    assert_eq!(future, records[1].seq);
}

pub async fn checkpoints_never_move_back_and_survive_reopening<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, None).await;
    assert_eq!(store.checkpoint("stream:orders:f:0/2").await.unwrap(), None);
    store
        .set_checkpoint("stream:orders:f:0/2", 7, None)
        .await
        .unwrap();
    store
        .set_checkpoint("stream:orders:f:0/2", 3, None)
        .await
        .unwrap();
    store
        .set_checkpoint("stream:orders:f:1/2", 4, None)
        .await
        .unwrap();
    store
        .set_checkpoint("stream:other:f:0/1", 1, None)
        .await
        .unwrap();
    drop(store);
    let store = open(ManualClock::new(START_MS)).await;
    assert_eq!(
        store.checkpoint("stream:orders:f:0/2").await.unwrap(),
        Some(7)
    );
    assert_eq!(
        store.checkpoints("stream:orders:f:").await.unwrap(),
        vec![
            ("stream:orders:f:0/2".to_owned(), 7),
            ("stream:orders:f:1/2".to_owned(), 4)
        ]
    );
}

pub async fn change_records_expire_after_the_retention_by_the_store_clock<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, clock) = opened(&open, Some(StreamView::KeysOnly)).await;
    put(&store, key("ann", "1"), "{}").await;
    clock.advance_ms(DAY_MS - 1);
    put(&store, key("ann", "2"), "{}").await;
    assert_eq!(store.expire_streams().await.unwrap(), 0);
    clock.advance_ms(1);
    assert_eq!(store.expire_streams().await.unwrap(), 1);
    let left = store.read_stream("orders", 0, 10, None).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, key("ann", "2"));
}

pub async fn bad_items_are_refused_with_a_reason<S: TableStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, Some(StreamView::KeysOnly)).await;
    let put_raw = |k: ItemKey, doc: Vec<u8>| {
        let store = &store;
        async move {
            store
                .put_item("orders", k, doc, PutCondition::Always, None)
                .await
        }
    };
    let no_sort = ItemKey {
        partition: "ann".to_owned(),
        sort: None,
    };
    assert!(matches!(
        put_raw(no_sort, b"{}".to_vec()).await,
        Err(StoreError::InvalidItem(_))
    ));
    assert!(matches!(
        put_raw(key("", "1"), b"{}".to_vec()).await,
        Err(StoreError::InvalidItem(_))
    ));
    assert_eq!(
        put_raw(key("ann", "1"), vec![b' '; 1025]).await,
        Err(StoreError::ItemTooLarge {
            size: 1025,
            limit: 1024
        })
    );
    assert_eq!(
        store.get_item("nope", &key("ann", "1")).await,
        Err(StoreError::TableNotFound("nope".to_owned()))
    );
    assert_eq!(store.latest_seq("orders").await.unwrap(), 0);
}

pub async fn deleting_a_table_removes_its_items_records_and_checkpoints_and_no_others<
    S: TableStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let (store, _) = opened(&open, Some(StreamView::NewImage)).await;
    // A second table whose name starts like the first's.
    let neighbour = TableConfig {
        name: "orders2".to_owned(),
        ..orders(Some(StreamView::KeysOnly))
    };
    store
        .declare_tables(std::slice::from_ref(&neighbour))
        .await
        .unwrap();
    put(&store, key("ada", "1"), r#"{"n":1}"#).await;
    put(&store, key("ada", "2"), r#"{"n":2}"#).await;
    put(&store, key("ada", "1"), r#"{"n":3}"#).await;
    store
        .put_item(
            "orders2",
            key("bob", "1"),
            b"{}".to_vec(),
            PutCondition::Always,
            None,
        )
        .await
        .unwrap()
        .unwrap();
    for consumer in [
        "stream:orders:f:0/2",
        "stream:orders:g:0/1",
        "stream:orders2:f:0/1",
    ] {
        store.set_checkpoint(consumer, 1, None).await.unwrap();
    }

    let deleted = store.delete_table("orders").await.unwrap();
    assert_eq!(
        deleted,
        crate::table::TableDeleted {
            items: 2,
            change_records: 3,
            checkpoints: 2
        }
    );
    assert_eq!(store.tables().await.unwrap(), vec![neighbour]);
    let missing = StoreError::TableNotFound("orders".into());
    assert_eq!(
        store
            .get_item("orders", &key("ada", "1"))
            .await
            .unwrap_err(),
        missing
    );
    assert_eq!(
        store.read_stream("orders", 0, 10, None).await.unwrap_err(),
        missing
    );
    assert_eq!(store.delete_table("orders").await.unwrap_err(), missing);
    assert_eq!(store.checkpoint("stream:orders:f:0/2").await.unwrap(), None);
    assert_eq!(
        store.checkpoints("stream:orders").await.unwrap(),
        vec![("stream:orders2:f:0/1".to_owned(), 1)]
    );
    assert_eq!(
        store.scan("orders2", None, 10).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        store
            .read_stream("orders2", 0, 10, None)
            .await
            .unwrap()
            .len(),
        1
    );

    // Declared again, it starts empty, its stream from the beginning.
    store
        .declare_tables(&[orders(Some(StreamView::NewImage))])
        .await
        .unwrap();
    assert!(
        store
            .scan("orders", None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(store.latest_seq("orders").await.unwrap(), 0);
    assert_eq!(put(&store, key("ada", "1"), r#"{"n":4}"#).await, 1);
    let records = store.read_stream("orders", 0, 10, None).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, ChangeKind::Insert);
}
