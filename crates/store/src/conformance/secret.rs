//! Secret store cases. Each takes a way to open the store under test on a
//! manual clock (opening twice must reach the same data). The bytes stored
//! are opaque to the store, so plain test bytes stand in for sealed ones.

use crate::ManualClock;
use crate::secret::{PutOutcome, SecretInfo, SecretStore};
use std::future::Future;

const START_MS: u64 = 1_700_000_000_000;

pub async fn a_put_secret_is_read_back_with_the_store_times<
    S: SecretStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    let outcome = store.put_secret("db", b"sealed-1".to_vec()).await.unwrap();
    assert_eq!(outcome, PutOutcome::Created);
    let got = store.get_secret("db").await.unwrap().unwrap();
    assert_eq!(got.name, "db");
    assert_eq!(got.sealed, b"sealed-1");
    assert_eq!((got.created_at, got.updated_at), (START_MS, START_MS));
}

pub async fn a_second_put_replaces_the_value_and_keeps_the_creation_time<
    S: SecretStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    store.put_secret("db", b"old".to_vec()).await.unwrap();
    clock.advance_ms(5_000);
    let outcome = store.put_secret("db", b"new".to_vec()).await.unwrap();
    assert_eq!(outcome, PutOutcome::Replaced);
    let got = store.get_secret("db").await.unwrap().unwrap();
    assert_eq!(got.sealed, b"new");
    assert_eq!(got.created_at, START_MS);
    assert_eq!(got.updated_at, START_MS + 5_000);
}

pub async fn an_absent_secret_is_none_and_deleting_it_says_so<
    S: SecretStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    assert_eq!(store.get_secret("ghost").await.unwrap(), None);
    assert!(!store.delete_secret("ghost").await.unwrap());
}

pub async fn delete_removes_only_the_named_secret<S: SecretStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    store.put_secret("a", b"1".to_vec()).await.unwrap();
    store.put_secret("b", b"2".to_vec()).await.unwrap();
    assert!(store.delete_secret("a").await.unwrap());
    assert_eq!(store.get_secret("a").await.unwrap(), None);
    assert_eq!(store.get_secret("b").await.unwrap().unwrap().sealed, b"2");
    assert!(!store.delete_secret("a").await.unwrap());
}

pub async fn list_gives_names_and_times_by_name<S: SecretStore, F: Future<Output = S>>(
    open: impl Fn(ManualClock) -> F,
) {
    let clock = ManualClock::new(START_MS);
    let store = open(clock.clone()).await;
    assert_eq!(store.list_secrets().await.unwrap(), []);
    store.put_secret("zeta", b"z".to_vec()).await.unwrap();
    clock.advance_ms(10);
    store.put_secret("alpha", b"a".to_vec()).await.unwrap();
    let info = |name: &str, at: u64| SecretInfo {
        name: name.to_owned(),
        created_at: at,
        updated_at: at,
    };
    assert_eq!(
        store.list_secrets().await.unwrap(),
        [info("alpha", START_MS + 10), info("zeta", START_MS)]
    );
}

pub async fn the_first_key_check_is_kept_and_later_candidates_are_ignored<
    S: SecretStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    let store = open(ManualClock::new(START_MS)).await;
    assert_eq!(store.key_check(b"first".to_vec()).await.unwrap(), b"first");
    assert_eq!(store.key_check(b"second".to_vec()).await.unwrap(), b"first");
}

pub async fn secrets_and_the_key_check_survive_reopening_the_store<
    S: SecretStore,
    F: Future<Output = S>,
>(
    open: impl Fn(ManualClock) -> F,
) {
    {
        let store = open(ManualClock::new(START_MS)).await;
        store.put_secret("db", b"sealed".to_vec()).await.unwrap();
        store.key_check(b"check".to_vec()).await.unwrap();
    }
    let store = open(ManualClock::new(START_MS + 1)).await;
    assert_eq!(
        store.get_secret("db").await.unwrap().unwrap().sealed,
        b"sealed"
    );
    assert_eq!(store.key_check(b"other".to_vec()).await.unwrap(), b"check");
}
