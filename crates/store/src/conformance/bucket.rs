//! Object metadata store cases. Each takes a way to open the store under
//! test on a manual clock (opening twice must reach the same data). Every
//! put registers its upload first, as `nimbus-bucket` does; the registry's
//! own cases say what a registration is worth.

use crate::StoreResult;
use crate::bucket::{BucketStore, EventsFor, ListQuery, NewObject, ObjectMeta, PutOutcome};
use crate::queue::{QueueConfig, QueueStore, SendMessage};
use crate::{ManualClock, StoreError};
use std::collections::BTreeMap;
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;

fn object(key: &str, blob: &str) -> NewObject {
    NewObject {
        key: key.to_owned(),
        size: 3,
        etag: format!("etag-{blob}"),
        content_type: "text/plain".to_owned(),
        user_metadata: BTreeMap::from([("owner".to_owned(), "ada".to_owned())]),
        blob: blob.to_owned(),
    }
}

/// `commit_put` after registering the upload, as an upload does.
pub(crate) trait PutRegistered {
    fn put_registered(
        &self,
        bucket: &str,
        object: NewObject,
        events: EventsFor,
    ) -> impl Future<Output = StoreResult<PutOutcome>>;
}

impl<S: BucketStore> PutRegistered for S {
    async fn put_registered(
        &self,
        bucket: &str,
        object: NewObject,
        events: EventsFor,
    ) -> StoreResult<PutOutcome> {
        self.begin_upload(bucket, &object.blob, "node-a").await?;
        self.commit_put(bucket, object, events).await
    }
}

fn no_events() -> EventsFor {
    Box::new(|_| Vec::new())
}

/// One event on `queue` whose body names the key and sequencer.
fn event_to(queue: &str) -> EventsFor {
    let queue = queue.to_owned();
    Box::new(move |o: &ObjectMeta| {
        let body = format!("{}@{}", o.key, o.sequencer).into_bytes();
        vec![(
            queue,
            SendMessage {
                body,
                ..SendMessage::default()
            },
        )]
    })
}

fn queue(name: &str) -> QueueConfig {
    QueueConfig {
        name: name.to_owned(),
        visibility_timeout_ms: 30_000,
        retention_ms: 86_400_000,
        delay_ms: 0,
        max_message_bytes: 4096,
        dedup_window_ms: 0,
        max_receive_count: None,
        dead_letter_queue: None,
    }
}

async fn bodies<S: QueueStore>(store: &S, queue: &str) -> Vec<String> {
    let got = store.receive(queue, 100, None).await.unwrap();
    got.into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect()
}

pub async fn a_put_object_is_read_back_with_its_metadata_and_time<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let put = store
        .put_registered("b", object("a/b.txt", "blob-1"), no_events())
        .await
        .unwrap();
    assert_eq!(put.replaced_blob, None);
    let got = store.object("b", "a/b.txt").await.unwrap().unwrap();
    assert_eq!(got, put.object);
    assert_eq!(got.size, 3);
    assert_eq!(got.etag, "etag-blob-1");
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.user_metadata["owner"], "ada");
    assert_eq!(got.blob, "blob-1");
    assert_eq!(got.created_at, START_MS);
    assert_eq!(store.object("b", "a/b").await.unwrap(), None);
    assert_eq!(store.object("other", "a/b.txt").await.unwrap(), None);
}

pub async fn the_object_and_its_events_commit_together_or_not_at_all<
    S: BucketStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store.declare_queues(&[queue("events")]).await.unwrap();
    store
        .put_registered("b", object("k", "blob-1"), event_to("events"))
        .await
        .unwrap();
    let put = store.object("b", "k").await.unwrap().unwrap();
    assert_eq!(
        bodies(&store, "events").await,
        [format!("k@{}", put.sequencer)]
    );
    // An event that cannot be sent undoes the put.
    let failed = store
        .put_registered("b", object("k2", "blob-2"), event_to("missing"))
        .await;
    assert_eq!(failed, Err(StoreError::QueueNotFound("missing".to_owned())));
    assert_eq!(store.object("b", "k2").await.unwrap(), None);
    // The failed commit kept the registration: the blob is still in flight.
    assert_eq!(
        store
            .unreferenced_blobs("b", vec!["blob-2".to_owned()])
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    // And the delete too.
    let failed = store.commit_delete("b", "k", event_to("missing")).await;
    assert!(failed.is_err());
    assert!(store.object("b", "k").await.unwrap().is_some());
}

pub async fn replacing_an_object_hands_back_the_old_blob_and_sequencers_increase_per_key<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let first = store
        .put_registered("b", object("k", "blob-1"), no_events())
        .await
        .unwrap();
    clock.advance_ms(10);
    let second = store
        .put_registered("b", object("k", "blob-2"), no_events())
        .await
        .unwrap();
    assert_eq!(second.replaced_blob.as_deref(), Some("blob-1"));
    assert!(second.object.sequencer > first.object.sequencer);
    assert_eq!(second.object.created_at, START_MS + 10);
    let removed = store
        .commit_delete("b", "k", no_events())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.blob, "blob-2");
    assert!(removed.sequencer > second.object.sequencer);
    let again = store
        .put_registered("b", object("k", "blob-3"), no_events())
        .await
        .unwrap();
    assert!(again.object.sequencer > removed.sequencer);
}

pub async fn deleting_removes_the_object_and_sends_its_events_an_absent_one_is_none<
    S: BucketStore + QueueStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store.declare_queues(&[queue("events")]).await.unwrap();
    store
        .put_registered("b", object("k", "blob-1"), no_events())
        .await
        .unwrap();
    let removed = store
        .commit_delete("b", "k", event_to("events"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.object("b", "k").await.unwrap(), None);
    assert_eq!(
        bodies(&store, "events").await,
        [format!("k@{}", removed.sequencer)]
    );
    let absent = store
        .commit_delete("b", "k", event_to("events"))
        .await
        .unwrap();
    assert_eq!(absent, None);
    assert!(bodies(&store, "events").await.is_empty());
}

fn keys(page: &crate::bucket::ListPage) -> Vec<&str> {
    page.objects.iter().map(|o| o.key.as_str()).collect()
}

pub async fn listing_filters_by_prefix_groups_by_delimiter_and_pages<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    for key in [
        "a.txt",
        "img/1.png",
        "img/2.png",
        "img/raw/3.cr2",
        "img0",
        "z",
    ] {
        store
            .put_registered("b", object(key, key), no_events())
            .await
            .unwrap();
    }
    store
        .put_registered("other", object("img/x", "x"), no_events())
        .await
        .unwrap();
    let query = |prefix: &str, delimiter: Option<&str>, after: Option<&str>, limit| ListQuery {
        prefix: prefix.to_owned(),
        delimiter: delimiter.map(str::to_owned),
        start_after: after.map(str::to_owned),
        limit,
    };
    let all = store
        .list_objects("b", query("", None, None, 100))
        .await
        .unwrap();
    assert_eq!(
        keys(&all),
        [
            "a.txt",
            "img/1.png",
            "img/2.png",
            "img/raw/3.cr2",
            "img0",
            "z"
        ]
    );
    assert_eq!(all.next_start_after, None);

    let img = store
        .list_objects("b", query("img/", None, None, 100))
        .await
        .unwrap();
    assert_eq!(keys(&img), ["img/1.png", "img/2.png", "img/raw/3.cr2"]);

    let top = store
        .list_objects("b", query("", Some("/"), None, 100))
        .await
        .unwrap();
    assert_eq!(keys(&top), ["a.txt", "img0", "z"]);
    assert_eq!(top.common_prefixes, ["img/"]);

    let nested = store
        .list_objects("b", query("img/", Some("/"), None, 100))
        .await
        .unwrap();
    assert_eq!(keys(&nested), ["img/1.png", "img/2.png"]);
    assert_eq!(nested.common_prefixes, ["img/raw/"]);

    // Pages of two entries, a common prefix counting as one.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_objects("b", query("", Some("/"), after.as_deref(), 2))
            .await
            .unwrap();
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        seen.extend(page.common_prefixes.iter().cloned());
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["a.txt", "img/", "img0", "z"]);

    let after_img = store
        .list_objects("b", query("", None, Some("img/2.png"), 100))
        .await
        .unwrap();
    assert_eq!(keys(&after_img), ["img/raw/3.cr2", "img0", "z"]);
}

pub async fn unreferenced_blobs_are_those_no_object_names<S: BucketStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store
        .put_registered("b", object("k", "kept"), no_events())
        .await
        .unwrap();
    store
        .put_registered("b", object("k", "current"), no_events())
        .await
        .unwrap();
    let orphans = store
        .unreferenced_blobs(
            "b",
            vec!["kept".to_owned(), "current".to_owned(), "never".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(orphans, ["kept", "never"]);
    let other = store
        .unreferenced_blobs("other", vec!["current".to_owned()])
        .await
        .unwrap();
    assert_eq!(other, ["current"]);
}

pub async fn objects_survive_reopening_the_store<S: BucketStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let sequencer = {
        let store = open(clock.clone()).await;
        store
            .put_registered("b", object("k", "blob-1"), no_events())
            .await
            .unwrap()
            .object
            .sequencer
    };
    let store = open(clock).await;
    assert_eq!(
        store.object("b", "k").await.unwrap().unwrap().blob,
        "blob-1"
    );
    let next = store
        .put_registered("b", object("k", "blob-2"), no_events())
        .await
        .unwrap();
    assert!(next.object.sequencer > sequencer);
}

pub async fn a_put_needs_its_upload_registered_and_ends_the_registration<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let unregistered = store
        .commit_put("b", object("k", "never-begun"), no_events())
        .await;
    assert_eq!(
        unregistered,
        Err(StoreError::UploadNotRegistered("never-begun".to_owned()))
    );
    assert_eq!(store.object("b", "k").await.unwrap(), None);

    store.begin_upload("b", "blob-1", "node-a").await.unwrap();
    store
        .commit_put("b", object("k", "blob-1"), no_events())
        .await
        .unwrap();
    // The commit ended the registration: the blob's second commit finds none.
    let again = store
        .commit_put("b", object("k2", "blob-1"), no_events())
        .await;
    assert_eq!(
        again,
        Err(StoreError::UploadNotRegistered("blob-1".to_owned()))
    );

    store.begin_upload("b", "blob-2", "node-a").await.unwrap();
    store.abandon_upload("b", "blob-2").await.unwrap();
    store.abandon_upload("b", "blob-2").await.unwrap();
    let abandoned = store
        .commit_put("b", object("k", "blob-2"), no_events())
        .await;
    assert_eq!(
        abandoned,
        Err(StoreError::UploadNotRegistered("blob-2".to_owned()))
    );
    // A registration belongs to its bucket.
    store
        .begin_upload("other", "blob-3", "node-a")
        .await
        .unwrap();
    let elsewhere = store
        .commit_put("b", object("k", "blob-3"), no_events())
        .await;
    assert_eq!(
        elsewhere,
        Err(StoreError::UploadNotRegistered("blob-3".to_owned()))
    );
    assert_eq!(
        store.object("b", "k").await.unwrap().unwrap().blob,
        "blob-1"
    );
}

pub async fn uploads_in_flight_are_not_orphans_until_their_registration_expires<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    const BOUND_MS: u64 = 3_600_000;
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.begin_upload("b", "early", "node-a").await.unwrap();
    clock.advance_ms(1_000);
    store.begin_upload("b", "late", "node-a").await.unwrap();
    let names = || vec!["early".to_owned(), "late".to_owned(), "loose".to_owned()];
    assert_eq!(
        store.unreferenced_blobs("b", names()).await.unwrap(),
        ["loose"]
    );
    // Younger than the bound by the store's clock: kept.
    clock.advance_ms(BOUND_MS - 1_001);
    assert_eq!(store.expire_uploads(BOUND_MS).await.unwrap(), 0);
    assert_eq!(
        store.unreferenced_blobs("b", names()).await.unwrap(),
        ["loose"]
    );
    // `early` has now reached it, `late` not yet.
    clock.advance_ms(1);
    assert_eq!(store.expire_uploads(BOUND_MS).await.unwrap(), 1);
    assert_eq!(
        store.unreferenced_blobs("b", names()).await.unwrap(),
        ["early", "loose"]
    );
    // An expired upload can no longer commit (its blob may be gone); one
    // still registered can.
    let expired = store
        .commit_put("b", object("k", "early"), no_events())
        .await;
    assert_eq!(
        expired,
        Err(StoreError::UploadNotRegistered("early".to_owned()))
    );
    store
        .commit_put("b", object("k", "late"), no_events())
        .await
        .unwrap();
    assert_eq!(
        store.unreferenced_blobs("b", names()).await.unwrap(),
        ["early", "loose"]
    );
    // A bound of 0 ends every registration, even one begun this instant.
    store.begin_upload("b", "now", "node-a").await.unwrap();
    assert_eq!(store.expire_uploads(0).await.unwrap(), 1);
    assert_eq!(
        store
            .unreferenced_blobs("b", vec!["now".to_owned()])
            .await
            .unwrap(),
        ["now"]
    );
}

pub async fn an_upload_registered_through_one_handle_is_in_flight_for_another<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    // Two nodes on one store: one uploading, one sweeping.
    let uploader = open(clock.clone()).await;
    let sweeper = open(clock.clone()).await;
    uploader
        .begin_upload("b", "theirs", "node-a")
        .await
        .unwrap();
    assert_eq!(
        sweeper
            .unreferenced_blobs("b", vec!["theirs".to_owned()])
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(sweeper.expire_uploads(60_000).await.unwrap(), 0);
    uploader
        .commit_put("b", object("k", "theirs"), no_events())
        .await
        .unwrap();
    assert_eq!(
        sweeper.object("b", "k").await.unwrap().unwrap().blob,
        "theirs"
    );
    // A node that died mid-upload: its registration ends at the bound.
    uploader
        .begin_upload("b", "crashed", "node-a")
        .await
        .unwrap();
    drop(uploader);
    clock.advance_ms(60_001);
    assert_eq!(sweeper.expire_uploads(60_000).await.unwrap(), 1);
    assert_eq!(
        sweeper
            .unreferenced_blobs("b", vec!["theirs".to_owned(), "crashed".to_owned()])
            .await
            .unwrap(),
        ["crashed"]
    );
}

pub async fn a_restarted_node_ends_its_own_upload_registrations_and_no_others<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store.begin_upload("b", "mine-1", "node-a").await.unwrap();
    store.begin_upload("b", "mine-2", "node-a").await.unwrap();
    store.begin_upload("b", "theirs", "node-b").await.unwrap();
    assert_eq!(store.abandon_uploads_of("node-a").await.unwrap(), 2);
    assert_eq!(store.abandon_uploads_of("node-a").await.unwrap(), 0);
    let candidates = ["mine-1", "mine-2", "theirs"].map(str::to_owned).to_vec();
    assert_eq!(
        store.unreferenced_blobs("b", candidates).await.unwrap(),
        ["mine-1", "mine-2"],
        "node-b's upload is still in flight"
    );
}

pub async fn deleting_a_bucket_leaves_every_blob_of_it_an_orphan_and_no_others<
    S: BucketStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    for (key, blob) in [("a", "blob-1"), ("b/c", "blob-2")] {
        store
            .put_registered("b", object(key, blob), no_events())
            .await
            .unwrap();
    }
    store
        .begin_upload("b", "in-flight", "node-a")
        .await
        .unwrap();
    store
        .put_registered("kept", object("a", "blob-9"), no_events())
        .await
        .unwrap();
    // Only buckets holding objects are listed (not one with an upload only).
    store.begin_upload("d", "only", "node-a").await.unwrap();
    assert_eq!(store.buckets_with_objects().await.unwrap(), ["b", "kept"]);

    let deleted = store.delete_bucket("b").await.unwrap();
    assert_eq!(
        deleted,
        Some(crate::bucket::BucketDeleted {
            objects: 2,
            bytes: 6,
            uploads: 1
        })
    );
    assert_eq!(store.object("b", "a").await.unwrap(), None);
    let listed = store
        .list_objects(
            "b",
            ListQuery {
                limit: 10,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.objects.is_empty());
    let blobs = ["blob-1", "blob-2", "in-flight"]
        .map(str::to_owned)
        .to_vec();
    assert_eq!(
        store.unreferenced_blobs("b", blobs.clone()).await.unwrap(),
        blobs
    );
    // The upload that was in flight cannot make its object visible now.
    assert_eq!(
        store
            .commit_put("b", object("late", "in-flight"), no_events())
            .await,
        Err(StoreError::UploadNotRegistered("in-flight".to_owned()))
    );
    assert_eq!(store.delete_bucket("b").await.unwrap(), None);
    assert_eq!(store.delete_bucket("never").await.unwrap(), None);
    assert_eq!(store.buckets_with_objects().await.unwrap(), ["kept"]);
    // Another bucket is untouched.
    assert_eq!(
        store.object("kept", "a").await.unwrap().unwrap().blob,
        "blob-9"
    );
    assert!(
        store
            .unreferenced_blobs("kept", vec!["blob-9".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );

    // A bucket holding only an upload in flight is deleted too.
    assert_eq!(
        store.delete_bucket("d").await.unwrap(),
        Some(crate::bucket::BucketDeleted {
            objects: 0,
            bytes: 0,
            uploads: 1
        })
    );
}
