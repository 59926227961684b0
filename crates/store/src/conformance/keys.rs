//! API key store cases: records round-trip with their limits, revocation
//! keeps the first time, and quota use survives reopening.

use crate::keys::{ApiKeyRecord, KeyStore, KeyUsage};
use crate::{ManualClock, StoreError};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;

fn key(id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        name: format!("name of {id}"),
        hash: [7; 32],
        created_at: START_MS,
        revoked_at: None,
        rate_per_s: Some(2.5),
        burst: Some(5),
        quota: Some(1000),
        quota_period_s: Some(86_400),
    }
}

pub async fn keys_round_trip_with_their_limits_oldest_first<S: KeyStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    let unlimited = ApiKeyRecord {
        rate_per_s: None,
        burst: None,
        quota: None,
        quota_period_s: None,
        ..key("b")
    };
    store.create_key(key("a")).await.unwrap();
    store.create_key(unlimited.clone()).await.unwrap();
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed, [(key("a"), None), (unlimited, None)]);
}

pub async fn revoking_keeps_the_first_time_and_unknown_keys_are_an_error<
    S: KeyStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.create_key(key("a")).await.unwrap();
    clock.advance_ms(1_000);
    let revoked = store.revoke_key("a").await.unwrap();
    assert_eq!(revoked.revoked_at, Some(START_MS + 1_000));
    clock.advance_ms(1_000);
    let again = store.revoke_key("a").await.unwrap();
    assert_eq!(again.revoked_at, Some(START_MS + 1_000));
    assert_eq!(
        store.revoke_key("ghost").await,
        Err(StoreError::KeyNotFound("ghost".into()))
    );
}

pub async fn quota_use_survives_reopening_the_store<S: KeyStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let usage = KeyUsage {
        window_start_s: 1_699_920_000,
        used: 42,
    };
    {
        let store = open(clock.clone()).await;
        store.create_key(key("a")).await.unwrap();
        let totals = store
            .add_key_usage(vec![("a".into(), usage)])
            .await
            .unwrap();
        assert_eq!(totals, [("a".to_owned(), usage)]);
    }
    let store = open(clock).await;
    assert_eq!(store.list_keys().await.unwrap(), [(key("a"), Some(usage))]);
}

pub async fn quota_use_from_many_handles_adds_up_within_its_window<
    S: KeyStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let (first, second) = (open(clock.clone()).await, open(clock).await);
    first.create_key(key("a")).await.unwrap();
    let window = 1_699_920_000;
    let used = |window_start_s, used| KeyUsage {
        window_start_s,
        used,
    };
    first
        .add_key_usage(vec![("a".into(), used(window, 5))])
        .await
        .unwrap();
    let totals = second
        .add_key_usage(vec![
            ("a".into(), used(window, 3)),
            ("ghost".into(), used(window, 1)),
        ])
        .await
        .unwrap();
    assert_eq!(
        totals,
        [("a".to_owned(), used(window, 8))],
        "added, never overwritten"
    );
    // Use counted in a window that has since ended is dropped.
    let next = window + 3600;
    first
        .add_key_usage(vec![("a".into(), used(next, 2))])
        .await
        .unwrap();
    let totals = second
        .add_key_usage(vec![("a".into(), used(window, 4))])
        .await
        .unwrap();
    assert_eq!(totals, [("a".to_owned(), used(next, 2))]);
    assert_eq!(
        first.list_keys().await.unwrap(),
        [(key("a"), Some(used(next, 2)))]
    );
}
